"""The supervisor of `ledger serve`'s worker processes, in a lean process of its own.

With several workers, `ledger serve` first starts (or reaches) the chain, deploys and migrates
with the whole ledger imported, then replaces itself by this module (`exec`, so the process id,
its children and whoever waits for it stay the same). What then waits on the workers holds
uvicorn, the log and metrics set-up and the chain's process id, not web3, SQLAlchemy and the
contracts, which it never used again: about 120 -> 45 MB of resident memory in a process that
only supervises. It stops the chain `ledger serve` started once the workers have stopped.

Signals: `exec_supervisor` blocks SIGINT and SIGTERM before the exec and `main` unblocks them
once its handlers are in place, so a Ctrl-C in between is delivered then rather than lost or
fatal (a blocked signal stays pending across `exec`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import MutableMapping
from typing import NoReturn

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
WORKER_HEALTHCHECK_TIMEOUT_S = 60
"""How long uvicorn's supervisor waits for a worker's answer to its ping before killing it.
uvicorn's 5 s default counts a spawned worker's start-up (it imports the ledger before it can
answer): on a loaded machine that took longer, and the workers were killed and restarted in a
loop, the gateway never serving. A worker hung for a minute is still replaced."""
CHAIN_STOP_TIMEOUT_S = 20.0
"""As `LocalChain.stop`: the chain gets SIGINT (it flushes its state) and this long to exit."""


class Terminated(BaseException):
    """SIGTERM arrived: the gateway stops as it does on Ctrl-C (a BaseException, like
    KeyboardInterrupt, so no `except Exception` on the way swallows it)."""


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def exec_supervisor(*, host: str, port: int, workers: int, chain_pid: int | None) -> NoReturn:
    """Replaces this process by the supervisor (see the module docstring). The environment
    carries what the workers need (`LEDGER_RPC_URL`, the operator key, the parent-chain mark)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "ledger.serving", "--host", host, "--port", str(port)]
    argv += ["--workers", str(workers)]
    if chain_pid is not None:
        argv += ["--chain-pid", str(chain_pid)]
    try:
        os.execv(sys.executable, argv)
    except OSError:
        if chain_pid is not None:
            stop_chain_process(chain_pid)
        raise


def stop_chain_process(pid: int, timeout_s: float = CHAIN_STOP_TIMEOUT_S) -> None:
    """Stops the chain process `pid` (a child of this process): SIGINT, then SIGKILL if it has
    not exited in `timeout_s`; reaps it either way."""
    try:
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        return  # already gone (and reaped)


MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"
WORKER_MMAP_THRESHOLD = 128 * 1024
"""glibc's default threshold above which an allocation gets pages of its own (mmap)."""


def keep_large_buffers_unmapped(environ: MutableMapping[str, str]) -> None:
    """Fixes glibc's mmap threshold for the workers, unless the operator set it.

    By default glibc raises the threshold to the size of each large mmap'd buffer freed (up to
    32 MB): after the first request of a few MB, a request body and what is decoded from it come
    from the heap, and the heap keeps those pages resident once they are freed. Held at the
    default, every buffer above 128 KiB is mapped and given back when freed. Measured as
    `make bench` measures it (100,000 readings pending; the other phases shortened), in turns:
    the gateway's resident memory 383.4-387.8 MB in three runs, 370.6-372.0 MB in three with it
    fixed. glibc reads it when a process starts, so it is set here, before uvicorn spawns the
    workers, not in them.
    """
    environ.setdefault(MMAP_THRESHOLD_ENV, str(WORKER_MMAP_THRESHOLD))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.serving", description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--chain-pid", type=int, default=None)
    args = parser.parse_args(argv)

    import uvicorn

    from ledger.logs import VERBOSE_ENV, configure_logging, redactor_for
    from ledger.metrics import multiprocess_dir
    from ledger.settings import Settings

    settings = Settings.from_env()
    configure_logging(
        settings.log_format,
        verbose=bool(os.environ.get(VERBOSE_ENV)),
        redactor=redactor_for(settings),
    )
    signal.signal(signal.SIGTERM, raise_terminated)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    keep_large_buffers_unmapped(os.environ)  # the workers inherit it
    try:
        # The workers count into files of one fresh directory, so a scrape of any of them shows
        # the counts of all (ledger/metrics.py); removed once they have stopped.
        with multiprocess_dir():
            uvicorn.run(
                "api.main:worker_app",
                factory=True,
                workers=args.workers,
                host=args.host,
                port=args.port,
                log_level="warning",
                log_config=None,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT_S,
            )
    except (KeyboardInterrupt, Terminated):
        pass  # uvicorn has stopped serving (and its workers); the chain is next
    finally:
        # A second Ctrl-C or SIGTERM must not cut the shutdown short and orphan the chain.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if args.chain_pid is not None:
            stop_chain_process(args.chain_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
