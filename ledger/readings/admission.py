"""Admission of reading batches when the gateway is saturated: refuse early, with a time to come
back, instead of queueing without bound.

Two bounds, each checked before a batch's body is read (so a refused batch costs no memory, is
not stored and acknowledges nothing):

- **In flight, per gateway process** (`max_in_flight`, `LEDGER_MAX_IN_FLIGHT_BATCHES`): batches
  being received, checked or stored at once. One more is refused with `429 gateway_saturated`
  and `Retry-After: 1`. Each admitted batch holds at most its body (`LEDGER_MAX_BODY_BYTES`) and
  what is parsed from it, so this bounds the memory of ingestion.
- **Pending anchoring, gateway-wide** (`max_pending`, `LEDGER_MAX_PENDING_READINGS`): readings
  stored but in no anchored batch yet, counted in the database (shared by every worker and
  gateway on it). Above the bound, the anchorer is that far behind (the chain is slow or down),
  and a batch is refused with `503 anchoring_backlog` and a `Retry-After` of the time the
  anchorer needs, at its nominal pace, to bring the backlog back under the bound (1 to 60 s).
  The count is read at most every `pending_refresh_s`, so the bound is soft: batches admitted
  meanwhile may pass it by up to (processes x in flight x batch size) readings.

Both refusals are safe to retry as they are: the meter's signed readings are idempotent by
(meter, seq).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ledger.errors import LedgerError

IN_FLIGHT_RETRY_AFTER_S = 1
"""A batch in flight takes well under a second to check and store: try again after one."""

MAX_BACKLOG_RETRY_AFTER_S = 60
"""The longest wait a backlog refusal asks for: the estimate beyond it means little."""


class GatewaySaturated(LedgerError):
    """This gateway process already handles as many reading batches as it may (429)."""

    code = "gateway_saturated"
    http_status = 429
    retry_after_s = IN_FLIGHT_RETRY_AFTER_S

    def __init__(self, *, in_flight: int) -> None:
        super().__init__(
            f"{in_flight} reading batches are in flight in this gateway process, the most it "
            f"takes (LEDGER_MAX_IN_FLIGHT_BATCHES): nothing of this one was stored; send it "
            f"again after Retry-After seconds"
        )


class AnchoringBacklog(LedgerError):
    """Too many readings wait for anchoring: the anchorer is behind (503)."""

    code = "anchoring_backlog"
    http_status = 503

    def __init__(self, *, pending: int, bound: int, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"{pending} readings wait for anchoring, more than {bound} "
            f"(LEDGER_MAX_PENDING_READINGS): nothing of this batch was stored; send it again "
            f"after Retry-After seconds"
        )


class Admission:
    """Counts the reading batches in flight and knows the anchoring backlog (see the module
    docstring). Thread-safe; one per gateway process."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        max_pending: int,
        count_pending: Callable[[], int],
        anchored_per_s: float,
        pending_refresh_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.max_pending = max_pending
        self._count_pending = count_pending
        self._anchored_per_s = anchored_per_s
        self._refresh_s = pending_refresh_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._in_flight = 0
        self._pending: int | None = None
        self._pending_read_at: float | None = None
        self._refreshing = False

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def pending_is_stale(self) -> bool:
        """Whether the backlog count is older than `pending_refresh_s` (or never read)."""
        with self._lock:
            read_at = self._pending_read_at
        return read_at is None or self._monotonic() - read_at >= self._refresh_s

    @property
    def has_count(self) -> bool:
        """Whether the backlog has been counted at least once."""
        with self._lock:
            return self._pending_read_at is not None

    def refresh_pending_in_background(self) -> None:
        """`refresh_pending` in a thread of its own, unless one already runs: a request is
        admitted on the last count rather than wait for a database that may be slow or down
        (its own store call then answers `store_unavailable` as it would without this bound)."""
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def refresh() -> None:
            try:
                self.refresh_pending()
            finally:
                with self._lock:
                    self._refreshing = False

        threading.Thread(target=refresh, name="pending-count", daemon=True).start()

    def refresh_pending(self) -> None:
        """Reads the backlog from the database (blocking: run it off the event loop).

        A database that does not answer leaves the last count: the batch's own store call
        then answers `store_unavailable`, which says more than a guess here would.
        """
        try:
            pending = self._count_pending()
        except LedgerError:
            return
        with self._lock:
            self._pending = pending
            self._pending_read_at = self._monotonic()

    def enter(self) -> None:
        """Admits one batch, or raises `AnchoringBacklog` / `GatewaySaturated` (nothing counted).

        The backlog is checked first: while the anchorer is behind, coming back in a second (as
        a full gateway would ask) does not help.
        """
        with self._lock:
            pending = self._pending
            if pending is not None and pending > self.max_pending:
                raise AnchoringBacklog(
                    pending=pending,
                    bound=self.max_pending,
                    retry_after_s=self._backlog_retry_after_s(pending),
                )
            if self._in_flight >= self.max_in_flight:
                raise GatewaySaturated(in_flight=self._in_flight)
            self._in_flight += 1

    def leave(self) -> None:
        """Ends a batch admitted by `enter`."""
        with self._lock:
            self._in_flight -= 1

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """`enter`, then `leave` however the batch ends."""
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def _backlog_retry_after_s(self, pending: int) -> int:
        excess = pending - self.max_pending
        seconds = math.ceil(excess / self._anchored_per_s) if self._anchored_per_s > 0 else 0
        return max(1, min(MAX_BACKLOG_RETRY_AFTER_S, seconds))
