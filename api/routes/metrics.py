"""`GET /metrics`: the gateway's counters for Prometheus, in its text format.

Counted as they happen (ledger/metrics.py, summed over every worker process): readings by
result and rejection code, request latency by route template and status, chain errors by where
and kind. Read from the database at scrape time, so every worker answers the same: readings
waiting for anchoring, how long the oldest of them has waited, the time since the last anchored
batch, and the block the event indexer's read model has reached.

Who may read it: the operator, or a scraper holding `LEDGER_METRICS_TOKEN` (a token that opens
nothing else, so a Prometheus configuration never holds the operator's power); see
docs/access.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Security
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.access import roles
from api.auth import token_matches
from api.deps import NodeDep
from api.errors import ApiError
from api.schemas.errors import ErrorPublic
from ledger.metrics import scrape_registry
from ledger.node import LedgerNode

router = APIRouter(tags=["operations"])

metrics_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="`Authorization: Bearer <LEDGER_METRICS_TOKEN>` (or the operator token)",
)


def require_metrics_reader(
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(metrics_bearer)],
) -> None:
    """Lets through the metrics token or the operator token.

    Raises:
        ApiError: 403 `metrics_api_disabled` when neither token is configured; 401
            `unauthorized` when the request carries no bearer token or another one.
    """
    settings = node.settings
    if not settings.metrics_token and not settings.operator_token:
        raise ApiError(
            403,
            code="metrics_api_disabled",
            message="the metrics are off: neither LEDGER_METRICS_TOKEN nor "
            "LEDGER_OPERATOR_TOKEN is set",
        )
    if credentials is None:
        raise ApiError(
            401,
            code="unauthorized",
            message="the metrics need an Authorization: Bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    presented = credentials.credentials
    if not (
        token_matches(settings.metrics_token, presented)
        or token_matches(settings.operator_token, presented)
    ):
        raise ApiError(
            401,
            code="unauthorized",
            message="the bearer token is neither the metrics token nor the operator token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


def _age_s(iso_time: str | None, now: datetime) -> float | None:
    if iso_time is None:
        return None
    then = datetime.strptime(iso_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


class DatabaseGauges(Collector):
    """The gauges the database holds, read once per scrape."""

    def __init__(self, node: LedgerNode) -> None:
        self._node = node

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = self._node.store.anchoring_backlog()
        now = datetime.now(UTC)
        yield GaugeMetricFamily(
            "ledger_pending_readings",
            "Readings stored but in no anchored batch yet (every gateway on this database).",
            value=backlog.pending,
        )
        yield GaugeMetricFamily(
            "ledger_anchoring_lag_seconds",
            "How long the oldest reading waiting for anchoring has waited; 0 when none waits.",
            value=_age_s(backlog.oldest_pending_received_at, now) or 0.0,
        )
        last_anchor_age = _age_s(backlog.last_anchored_at, now)
        if last_anchor_age is not None:
            yield GaugeMetricFamily(
                "ledger_last_anchor_age_seconds",
                "Time since this database last saw a batch mined (absent before the first).",
                value=last_anchor_age,
            )
        cursor = self._node.read_model.cursor()
        if cursor is not None:
            yield GaugeMetricFamily(
                "ledger_indexer_block",
                "The block the event indexer's read model has reached (its cursor).",
                value=cursor.block_number,
            )


@router.get(
    "/metrics",
    # Response (no media type of its own): the 200 is described below as text/plain, and the
    # errors keep their JSON body in the schema.
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format 0.0.4",
        },
        401: {"model": ErrorPublic, "description": "no bearer token, or not one of the two"},
        403: {
            "model": ErrorPublic,
            "description": "`metrics_api_disabled`: neither LEDGER_METRICS_TOKEN nor "
            "LEDGER_OPERATOR_TOKEN is set",
        },
        503: {
            "model": ErrorPublic,
            "description": "database unreachable (`store_unavailable`, with Retry-After)",
        },
    },
    openapi_extra=roles("operator", "metrics"),
)
def metrics(
    node: NodeDep, _: Annotated[None, Depends(require_metrics_reader)]
) -> PlainTextResponse:
    """The gateway's metrics in Prometheus' text format: readings by result and code, request
    latency by route and status, chain errors, pending readings, anchoring lag and the
    indexer's block (see README "Operating the gateway")."""
    database = CollectorRegistry()
    database.register(DatabaseGauges(node))
    # Two exposition documents end to end are one: each metric family stands on its own lines.
    text = generate_latest(scrape_registry()) + generate_latest(database)
    return PlainTextResponse(text, media_type=CONTENT_TYPE_LATEST)
