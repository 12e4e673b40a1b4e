"""The gateway under test: `ledger serve` in its own process, as `make run` starts it.

Each gateway gets the data directory it is given and free ports for itself and its Ganache, and
is stopped with SIGINT (as Ctrl-C does), which also stops the chain it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ledger.chain.client import free_port

LEDGER_BIN = Path(sys.executable).parent / "ledger"
CHAIN_COMMANDS = ("ganache", "anvil")
"""Words in a command line that mark the chain node (a child of the gateway, not part of it)."""


class BenchError(Exception):
    """The benchmark could not measure something: a process or an answer was not as expected."""


@dataclass
class Gateway:
    """A running `ledger serve` process."""

    process: subprocess.Popen[bytes]
    base_url: str
    port: int
    chain_port: int
    data_dir: Path
    log_path: Path
    log_file: IO[bytes]
    health_status: int

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.chain_port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "ledger.db"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"the gateway exited with code {self.process.returncode}; see {self.log_path}"
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            # Its chain runs in a session of its own; remembered in case it must be killed too.
            descendants = _descendants(self.process.pid)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                for pid in descendants:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self.log_file.close()

    def rss_mb(self) -> tuple[float, float]:
        """(gateway, chain) resident memory in MB: the gateway process and every descendant
        except the chain node and its own descendants."""
        gateway_kb = chain_kb = 0
        stack = [(self.process.pid, False)]
        while stack:
            pid, in_chain = stack.pop()
            in_chain = in_chain or any(word in _cmdline(pid) for word in CHAIN_COMMANDS)
            kb = _vm_rss_kb(pid)
            if in_chain:
                chain_kb += kb
            else:
                gateway_kb += kb
            stack.extend((child, in_chain) for child in child_pids(pid))
        return gateway_kb / 1024, chain_kb / 1024


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    stack = child_pids(pid)
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(child_pids(child))
    return found


def _vm_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass  # exited meanwhile
    return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def child_pids(pid: int) -> list[int]:
    """The process's children (Linux /proc); none once it has ended."""
    children: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return children
    for task in tasks:
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # a thread that ended meanwhile
            continue
    return children


def _health_status(url: str) -> int | None:
    """The HTTP status /healthz answers, or None while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def start_gateway(
    data_dir: Path, log_path: Path, *, anchor_enabled: bool, timeout_s: float = 180.0
) -> Gateway:
    """Starts `ledger serve` on a managed Ganache under `data_dir` and waits until it answers.

    Any answer to /healthz counts (a 503 or 500 is reported by the caller, not waited out): the
    benchmark needs the server up, and finds the chain by the port it gave it.
    """
    port = free_port()
    chain_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_DATA_DIR=str(data_dir),
        LEDGER_CHAIN="ganache",
        LEDGER_CHAIN_PORT=str(chain_port),
        LEDGER_PORT=str(port),
        LEDGER_ANCHOR_ENABLED="true" if anchor_enabled else "false",
    )
    log = open(log_path, "ab")  # noqa: SIM115 - the child writes to it for its whole life
    process = subprocess.Popen(
        [str(LEDGER_BIN), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    gateway = Gateway(
        process, f"http://127.0.0.1:{port}", port, chain_port, data_dir, log_path, log, 0
    )
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise BenchError(f"ledger serve exited with code {process.returncode}:\n{tail}")
            status = _health_status(f"{gateway.base_url}/healthz")
            if status is not None:
                gateway.health_status = status
                return gateway
            time.sleep(0.2)
        raise BenchError(f"the gateway did not answer /healthz within {timeout_s:.0f} s")
    except BaseException:
        gateway.stop()
        raise
