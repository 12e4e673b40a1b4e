"""What the gateway counts for Prometheus (`GET /metrics`, api/routes/metrics.py).

The counters and histograms live here, beside the core that counts, so a stage counts with one
call and no HTTP import: readings by result and rejection code (`count_ingest_results`, called
once per batch by the Ingestor), chain errors by where and kind (`count_chain_error`: the
anchorer's and the indexer's failed cycles, requests answered `chain_unavailable`), and the
request latency histogram the gateway's middleware observes (api/observe.py).

`ledger serve --workers N` runs N processes, and a scrape reaches one of them: each must answer
with the counts of all. prometheus-client's multiprocess mode does that: with
`PROMETHEUS_MULTIPROC_DIR` set before a process imports prometheus-client, every value is kept
in a memory-mapped file of that directory, one per process, and `scrape_registry()` sums the
files at scrape time. `multiprocess_dir()` is what the serving parent runs the workers in: a
fresh directory it creates, names in the environment its workers inherit, and removes when they
have stopped (stale files of an earlier run would otherwise be added to this run's counts).
A single process (one worker, the tests' in-process gateways) keeps its values in memory.

Values that the database already holds (pending readings, anchoring lag, the indexer's block)
are not counted here: the route reads them at scrape time, the same for every worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import Enum
from operator import attrgetter
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's own variable: where each process of a multi-process gateway writes."""

READINGS = Counter(
    "ledger_readings",
    "Readings submitted, by result (accepted, duplicate, rejected) and rejection code "
    "(empty unless rejected).",
    ["result", "code"],
)
CHAIN_ERRORS = Counter(
    "ledger_chain_errors",
    "Failures talking to the chain, by where they happened (anchoring, indexing, request) "
    "and kind (unavailable, timeout, other).",
    ["where", "kind"],
)
REQUEST_SECONDS = Histogram(
    "ledger_http_request_duration_seconds",
    "Time from a request's first byte in to its answer's last byte out, by method, route "
    "template (never the raw path) and status.",
    ["method", "route", "status"],
    # From a health check's milliseconds to a 5,000-reading batch's seconds.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


class CountedResult(Protocol):
    """What is counted of a reading's result (ledger.readings.results.IngestResult; named
    structurally, as a top-level module does not import a stage)."""

    @property
    def status(self) -> Enum: ...

    @property
    def code(self) -> Enum | None: ...


_OUTCOME = attrgetter("status", "code")


def count_ingest_results(results: Iterable[CountedResult]) -> None:
    """Adds a batch's results to `ledger_readings_total`: one increment per distinct (result,
    code) of the batch, not one per reading, so counting costs the hot path next to nothing."""
    for (status, code), count in Tally(map(_OUTCOME, results)).items():
        READINGS.labels(result=status.value, code="" if code is None else code.value).inc(count)


def chain_error_kind(error: BaseException) -> str:
    """`unavailable` (nothing answered: refused connection, ChainUnavailable), `timeout`, or
    `other` (an answer the client could not use, a revert the caller did not expect)."""
    from ledger.errors import ChainUnavailable

    names = {cls.__name__ for cls in type(error).__mro__}
    if "Timeout" in names or "TimeoutError" in names or "ReadTimeout" in names:
        return "timeout"
    if isinstance(error, ChainUnavailable | ConnectionError) or "ConnectionError" in names:
        return "unavailable"
    return "other"


def count_chain_error(where: str, error: BaseException) -> None:
    """Counts one failure of `where` (anchoring, indexing, request) talking to the chain."""
    CHAIN_ERRORS.labels(where=where, kind=chain_error_kind(error)).inc()


def scrape_registry() -> CollectorRegistry:
    """The registry a scrape reads the counters from: every process's files in multiprocess
    mode, this process's own values otherwise."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@contextmanager
def multiprocess_dir() -> Iterator[str]:
    """Runs the block with `PROMETHEUS_MULTIPROC_DIR` naming a fresh private directory, for the
    worker processes started in it to share their counts; removes it (and unsets the
    variable) afterwards. Call it before starting the workers: a process reads the variable
    when it first imports prometheus-client."""
    directory = tempfile.mkdtemp(prefix="ledger-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)
