"""The gateway application: `create_app(node)` wires routes and error handling to a LedgerNode.

`worker_app()` is the factory each worker process of `ledger serve` runs: it builds its own
LedgerNode attached to the chain the parent process started (or reached), and its own anchorer,
of which only the one holding the database's anchoring lease anchors.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from api.admission import ReadingAdmission
from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.observe import RequestObservation
from api.routes import (
    auth,
    bills,
    bundle,
    complaints,
    health,
    market,
    meters,
    metrics,
    readings,
    usage,
)
from api.routes.pages import install_pages
from ledger.logs import GATEWAY_LOGGER, VERBOSE_ENV, configure_logging, redactor_for
from ledger.node import PARENT_CHAIN_ENV, LedgerNode
from ledger.readings.admission import Admission
from ledger.settings import Settings

_PR_SET_PDEATHSIG = 1
YOUNG_GC_THRESHOLD = 10_000
"""Allocations between two collections of the cyclic garbage collector's youngest generation
(Python's default: 700); see `settle_garbage_collector`."""

gateway_log = logging.getLogger(GATEWAY_LOGGER)


def create_app(
    node: LedgerNode,
    *,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """Builds the FastAPI app around a started LedgerNode (the caller owns its lifetime)."""
    app = FastAPI(
        title="Energy ledger gateway",
        version="0.1.0",
        description=(
            "Signed meter readings anchored on an EVM chain; meter identities; peer-to-peer "
            "energy trades settled from the readings; tariffs and bills anyone can re-derive; "
            "health."
        ),
        lifespan=lifespan,
        # /docs and /redoc are served by api/routes/pages.py with their scripts from the
        # gateway: FastAPI's own pages load them from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.node = node
    install_error_handlers(app)
    # Before every route: no route sees a body over the limit.
    app.add_middleware(BodySizeLimit, max_bytes=node.settings.body_limit_bytes)
    # Outside the body limit, which reads a body whole: a batch refused for saturation is
    # never held in memory (api/admission.py).
    app.add_middleware(
        ReadingAdmission,
        admission=reading_admission(node),
        max_body_bytes=node.settings.body_limit_bytes,
    )
    # Outermost of ours: the request id, log line and latency of every answer, refusals of
    # the middlewares above included (api/observe.py).
    app.add_middleware(RequestObservation)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(meters.router)
    app.include_router(readings.router)
    app.include_router(market.router)
    app.include_router(bills.router)
    app.include_router(usage.router)
    app.include_router(bundle.router)
    app.include_router(complaints.router)
    app.include_router(metrics.router)
    install_pages(app)
    return app


def reading_admission(node: LedgerNode) -> Admission:
    """The bounds of `POST /v1/readings` for this process, from the node's settings."""
    settings = node.settings
    return Admission(
        max_in_flight=settings.max_in_flight_batches,
        max_pending=settings.max_pending_readings,
        # Looked up when a batch arrives: an app built around a node without a store (the
        # page tests' stand-in) still starts.
        count_pending=lambda: node.store.count_pending(),
        # The anchorer's nominal pace: a full batch every interval.
        anchored_per_s=settings.anchor_max_readings / settings.anchor_interval_s,
    )


def _die_with_parent() -> None:
    """Asks Linux to kill this worker when its parent dies, even by SIGKILL, so a killed
    gateway never leaves workers serving (and holding the anchoring lease) behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the workers stop with a graceful shutdown
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def settle_garbage_collector() -> None:
    """Readies the cyclic garbage collector for serving, once the app and its node exist.

    A batch of 2,500 readings makes tens of thousands of container objects (parsed JSON, models,
    results) that live until its answer is sent and are then freed by reference counting: they
    form no cycles. At Python's default thresholds the collector still ran hundreds of young and
    several full collections per 20,000 readings ingested, the full ones walking the ~190,000
    objects of the imported modules, contracts and app, and none of them freed anything from
    the requests: 8.6-11.3 % of a worker's CPU under `make bench`'s load, 0.8-1.1 % after this.
    `gc.freeze()` leaves everything that exists now out of every later collection; the young
    generation is collected after `YOUNG_GC_THRESHOLD` allocations instead of 700. Cycles made
    later (an exception's traceback, say) are still collected.
    """
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, 10, 10)


def worker_app() -> FastAPI:
    """The app of one `ledger serve` worker process (uvicorn factory)."""
    _die_with_parent()
    settings = Settings.from_env()
    configure_logging(
        settings.log_format,
        verbose=bool(os.environ.get(VERBOSE_ENV)),
        redactor=redactor_for(settings),
    )
    node = LedgerNode.start(settings)
    node.chain_started_by_parent = os.environ.get(PARENT_CHAIN_ENV) or None
    gateway_log.info("worker_started")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        node.start_background_work()
        settle_garbage_collector()
        try:
            yield
        finally:
            node.stop()
            gateway_log.info("worker_stopped")

    return create_app(node, lifespan=lifespan)
