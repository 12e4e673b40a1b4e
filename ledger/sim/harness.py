"""The local-gateway harness: the gateway a simulation talks to, and how it talks to it.

`HttpSender` posts batches of readings to any gateway over one keep-alive connection (the fleet
simulator's and the market day's `send`). `local_gateway` starts a Ganache with its clock where
the caller wants it and a gateway served from this process, for `ledger market-day` and tests.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ledger.chain.client import LocalChain, free_port
from ledger.node import LedgerNode
from ledger.settings import DEV_OPERATOR_KEY, Settings
from ledger.sim.day_plan import MarketDayError
from ledger.sim.fleet import Planned, SimulationError

RETRY_STATUSES = frozenset({429, 503})
"""Answers that refuse a whole batch for now (nothing stored): with `Retry-After`, send it again."""


@dataclass(frozen=True)
class Refusal:
    """A batch the gateway refused for now, and how long it asked the sender to wait."""

    status: int
    code: str
    retry_after_s: int


class HttpSender:
    """`send` over one persistent HTTP/1.1 connection (standard library, keep-alive).

    A `429` or `503` with `Retry-After` (the gateway saturated, the anchorer behind, the database
    restarting) stored nothing of the batch: the sender waits that many seconds and sends the
    same batch again, as a meter should, until `give_up_s` after its first attempt. Each such
    refusal is kept in `refusals`. Any other answer than `202` is a `SimulationError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 120.0,
        give_up_s: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SimulationError(f"gateway URL {base_url!r} is not http(s)://host[:port]")
        self._base = base_url
        self._path = parts.path.rstrip("/") + "/v1/readings"
        self._host = parts.hostname
        self._port = parts.port
        self._https = parts.scheme == "https"
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None
        self._give_up_s = give_up_s
        self._sleep = sleep
        self._clock = clock
        self.refusals: list[Refusal] = []

    def __call__(self, batch: Sequence[Planned]) -> list[dict[str, Any]]:
        body = json.dumps({"readings": [p.body() for p in batch]}).encode()
        deadline = self._clock() + self._give_up_s
        while True:
            status, retry_after, data = self._post(body)
            if status not in RETRY_STATUSES or retry_after is None:
                break
            self.refusals.append(Refusal(status, _error_code(data), retry_after))
            if self._clock() + retry_after > deadline:
                break  # reported below as the refusal it is
            self._sleep(retry_after)
        if status != 202:
            raise SimulationError(
                f"gateway answered {status} to POST {self._path} with "
                f"{len(batch)} readings: {data[:500].decode(errors='replace')}"
            )
        try:
            results = json.loads(data)["results"]
        except (ValueError, KeyError, TypeError) as error:
            raise SimulationError(
                f"gateway answer is not a results object: {data[:200]!r}"
            ) from error
        if not isinstance(results, list):
            raise SimulationError("gateway answer's results is not a list")
        return results

    def _post(self, body: bytes) -> tuple[int, int | None, bytes]:
        """One POST of the batch: the status, `Retry-After` in seconds if given, the body."""
        headers = {"content-type": "application/json", "accept": "application/json"}
        for attempt in (1, 2):
            if self._connection is None:
                connection_type = (
                    http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                )
                self._connection = connection_type(self._host, self._port, timeout=self._timeout_s)
            try:
                self._connection.request("POST", self._path, body, headers)
                response = self._connection.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError) as error:
                # A kept-alive connection the server closed: reconnect once. Re-sending is safe,
                # readings are idempotent by (meter, seq) -- but then they come back `duplicate`
                # and count as mismatches, which is what a lost answer deserves to show.
                self.close()
                if attempt == 2:
                    raise SimulationError(f"gateway {self._base} unreachable: {error}") from error
        retry_after = response.getheader("retry-after")
        seconds = int(retry_after) if retry_after is not None and retry_after.isdigit() else None
        return response.status, seconds, data

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _error_code(data: bytes) -> str:
    """The stable code of an error answer's body, or "" when it has none."""
    try:
        code = json.loads(data)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return code if isinstance(code, str) else ""


_CHAIN_STATE = {"ganache": "ganache", "anvil": "anvil/state.json"}
"""Where `keep_chain` keeps each chain's state under the data directory (as `ledger serve`)."""


@contextmanager
def local_gateway(
    data_dir: Path,
    *,
    chain_start: int,
    keep_chain: bool = False,
    anchor_interval_s: float = 0.5,
    billing_time_zone: str = "UTC",
    chain_kind: str = "ganache",
) -> Iterator[tuple[str, LedgerNode]]:
    """A Ganache (or with `chain_kind="anvil"` an Anvil) whose clock starts at `chain_start`
    and a gateway served from this process (real HTTP on a free port); yields (base URL, node)
    and stops both afterwards.

    The chain is in memory unless `keep_chain`, which keeps its database (Anvil: its state
    file) under `data_dir` (slower: Ganache then writes every block to disk).
    `billing_time_zone` is the gateway's `LEDGER_BILLING_TIME_ZONE` (whose calendar months a
    simulated month bills)."""
    import uvicorn

    from api.main import create_app

    local = LocalChain(
        kind=chain_kind,
        port=free_port(),
        db_path=data_dir / "chain" / _CHAIN_STATE[chain_kind] if keep_chain else None,
        log_path=data_dir / f"{chain_kind}.log",
        start_time=chain_start,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    local.start()
    try:
        settings = Settings(
            rpc_url=local.rpc_url,
            data_dir=data_dir,
            operator_key=DEV_OPERATOR_KEY,
            anchor_interval_s=anchor_interval_s,
            billing_time_zone=billing_time_zone,
            # A token of this run only: the simulators read their readings back as the
            # operator (a stored reading is not public).
            operator_token=secrets.token_urlsafe(32),
        )
        node = LedgerNode.start(settings)
        try:
            node.start_anchoring()
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))
            port = int(listener.getsockname()[1])
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(node), log_level="warning", access_log=False, lifespan="off"
                )
            )
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [listener]}, name="gateway", daemon=True
            )
            thread.start()
            try:
                deadline = time.monotonic() + 30
                while not server.started:
                    if not thread.is_alive() or time.monotonic() > deadline:
                        raise MarketDayError("the in-process gateway did not start")
                    time.sleep(0.05)
                yield f"http://127.0.0.1:{port}", node
            finally:
                server.should_exit = True
                thread.join(timeout=30)
                listener.close()
        finally:
            node.stop()
    finally:
        local.stop()
