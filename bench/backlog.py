"""A fleet's backlog after an outage: every meter sends the readings it kept, all at once.

Each meter's backlog is one request (its readings in seq order), and `clients` connections send
the meters' requests side by side, as data concentrators coming back online would. The gateway
may refuse part of the burst (`429 gateway_saturated`, `503 anchoring_backlog`, with
`Retry-After`): a client then waits that many seconds and sends the same body again, as meters
must. The clock runs from the common start to the last `202`; then until the gateway's
database shows every reading of the backlog in an anchored batch.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.anchoring import wait_anchored
from bench.fleet import SignedFleet, body
from bench.gateway import BenchError

_HEADERS = {"content-type": "application/json", "accept": "application/json"}
_RETRY_STATUSES = (429, 503)


@dataclass
class BacklogResult:
    """What the backlog sent, what the gateway answered, and how long it took."""

    readings: int = 0
    accepted: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    ack_s: float = 0.0
    anchored_s: float | None = None


def _post_until_answered(
    connection: http.client.HTTPConnection, payload: bytes, refusals: Counter[str]
) -> bytes:
    """Posts one body until a 202, honouring 429/503 Retry-After; the 202's answer."""
    while True:
        connection.request("POST", "/v1/readings", payload, _HEADERS)
        response = connection.getresponse()
        data = response.read()
        retry_after = response.getheader("retry-after")
        if response.status == 202:
            return data
        if response.status in _RETRY_STATUSES and retry_after and retry_after.isdigit():
            refusals[json.loads(data)["error"]["code"]] += 1
            time.sleep(int(retry_after))
            continue
        raise BenchError(
            f"POST /v1/readings answered {response.status}: {data[:500].decode(errors='replace')}"
        )


def send_backlog(
    base_url: str,
    fleet: SignedFleet,
    ticks: range,
    *,
    clients: int,
    db_path: Path,
    anchor_timeout_s: float,
) -> BacklogResult:
    """Sends every meter's readings of `ticks` as one request per meter over `clients`
    connections at once; times acknowledgement and anchoring (see the module docstring)."""
    bodies = [(len(ticks), body([meter[k] for k in ticks])) for meter in fleet.objects]
    shares = [bodies[c::clients] for c in range(clients)]
    parts = urlsplit(base_url)
    result = BacklogResult(readings=len(ticks) * len(bodies))
    lock = threading.Lock()
    errors: list[BaseException] = []
    ready = threading.Barrier(clients + 1)

    def work(share: Sequence[tuple[int, bytes]]) -> None:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=300)
        refusals: Counter[str] = Counter()
        accepted = 0
        ready.wait()
        try:
            for _, payload in share:
                answer = json.loads(_post_until_answered(connection, payload, refusals))
                accepted += int(answer["accepted"])
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            errors.append(error)
        finally:
            connection.close()
            with lock:
                result.accepted += accepted
                result.refusals.update(refusals)

    threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in shares]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.ack_s = time.perf_counter() - began
    if errors:
        raise BenchError(f"a backlog client failed: {errors[0]!r}") from errors[0]
    # Every meter sends the same seqs in a phase: the seq range names the backlog's readings.
    if wait_anchored(db_path, ticks.start + 1, ticks.stop, timeout_s=anchor_timeout_s):
        result.anchored_s = time.perf_counter() - began
    return result
