"""HTTP load: pre-encoded batch bodies posted over keep-alive `http.client` connections.

While the clock runs a client only sends bytes and reads the answer's `accepted` count (a byte
search near its end); the full answers are kept and checked after the clock stops.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.fleet import body
from bench.gateway import BenchError

_ACCEPTED = re.compile(rb'"accepted":(\d+)')
_HEADERS = {"content-type": "application/json", "accept": "application/json"}


class Client:
    """One keep-alive connection to the gateway's `POST /v1/readings`."""

    def __init__(self, base_url: str, *, timeout_s: float = 300.0) -> None:
        parts = urlsplit(base_url)
        if parts.hostname is None:
            raise BenchError(f"no host in {base_url!r}")
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)

    def post(self, body: bytes) -> tuple[int, bytes]:
        """Posts one batch body; (accepted count, the answer's bytes)."""
        self._connection.request("POST", "/v1/readings", body, _HEADERS)
        response = self._connection.getresponse()
        data = response.read()
        if response.status != 202:
            raise BenchError(
                f"POST /v1/readings answered {response.status}: "
                f"{data[:500].decode(errors='replace')}"
            )
        # "accepted" is the answer's key after "results"; the statuses inside are "accepted",
        # followed by a comma, never a colon.
        match = _ACCEPTED.search(data, max(0, len(data) - 200))
        if match is None:
            raise BenchError(f"the answer has no accepted count: ...{data[-200:]!r}")
        return int(match.group(1)), data

    def close(self) -> None:
        self._connection.close()


@dataclass
class LoadResult:
    """What a load run sent and what the gateway answered."""

    readings: int = 0
    requests: int = 0
    accepted: int = 0
    elapsed_s: float = 0.0
    answers: list[bytes] = field(default_factory=list, repr=False)
    latencies_s: list[float] = field(default_factory=list, repr=False)
    late_sends: int = 0

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def check(self) -> Counter[str]:
        """Parses every answer; outcomes by status (and rejection code). Raises on a mismatch
        between the fast count used while timing and the results themselves."""
        outcomes: Counter[str] = Counter()
        accepted = 0
        for data in self.answers:
            answer = json.loads(data)
            for result in answer["results"]:
                code = result.get("code")
                outcomes[result["status"] + (f":{code}" if code else "")] += 1
            accepted += int(answer["accepted"])
        if accepted != self.accepted or sum(outcomes.values()) != self.readings:
            raise BenchError(
                f"counted {self.accepted} accepted of {self.readings} while timing, "
                f"but the answers hold {accepted} of {sum(outcomes.values())}"
            )
        return outcomes


def batches(objects: Sequence[bytes], size: int) -> list[tuple[int, bytes]]:
    """(reading count, body) per batch of at most `size` readings."""
    return [
        (len(objects[i : i + size]), body(objects[i : i + size]))
        for i in range(0, len(objects), size)
    ]


def post_all(base_url: str, bodies: Sequence[tuple[int, bytes]]) -> LoadResult:
    """Posts bodies one after the other on one connection (warm-ups, small loads)."""
    return flat_out(base_url, [bodies])


def flat_out(base_url: str, streams: Sequence[Sequence[tuple[int, bytes]]]) -> LoadResult:
    """One connection (thread) per stream posts its bodies back to back, all starting together.

    The clock runs from the common start to the last answer.
    """
    result = LoadResult()
    lock = threading.Lock()
    errors: list[BaseException] = []
    clients = [Client(base_url) for _ in streams]
    ready = threading.Barrier(len(streams) + 1)

    def work(client: Client, bodies: Sequence[tuple[int, bytes]]) -> None:
        ready.wait()
        try:
            for count, payload in bodies:
                accepted, data = client.post(payload)
                with lock:
                    result.readings += count
                    result.requests += 1
                    result.accepted += accepted
                    result.answers.append(data)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            errors.append(error)

    threads = [
        threading.Thread(target=work, args=(c, s), daemon=True)
        for c, s in zip(clients, streams, strict=True)
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.perf_counter() - began
    for client in clients:
        client.close()
    if errors:
        raise BenchError(f"a client failed: {errors[0]!r}") from errors[0]
    return result


def paced(base_url: str, bodies: Sequence[tuple[int, bytes]], period_s: float) -> LoadResult:
    """Posts body k at `k * period_s` after the start (or at once when running late), on one
    connection; records each request's round trip."""
    result = LoadResult()
    client = Client(base_url)
    began = time.perf_counter()
    try:
        for k, (count, payload) in enumerate(bodies):
            due = began + k * period_s
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -period_s:
                result.late_sends += 1
            sent = time.perf_counter()
            accepted, data = client.post(payload)
            result.latencies_s.append(time.perf_counter() - sent)
            result.readings += count
            result.requests += 1
            result.accepted += accepted
            result.answers.append(data)
    finally:
        client.close()
    result.elapsed_s = time.perf_counter() - began
    return result
