"""`ledger serve` stops what it started, on SIGTERM (a service manager, `kill`) as on SIGINT
(Ctrl-C): its workers, then its managed chain, and exits 0."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from ledger.chain.client import free_port, port_is_free
from tests.fixtures.gateway import ledger_env, start_gateway


def chain_processes(port: int) -> list[int]:
    """Pids of processes whose command line serves a chain on this port (Linux /proc)."""
    wanted = f"--server.port\0{port}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        if wanted in command:
            found.append(int(entry.name))
    return found


# One worker: uvicorn serves in this process and re-raises the signal it caught (the case that
# orphaned the chain on SIGTERM). Two workers: uvicorn's supervisor stops the workers first.
@pytest.mark.parametrize(
    ("stop_signal", "workers"),
    [(signal.SIGTERM, "1"), (signal.SIGINT, "1"), (signal.SIGTERM, "2")],
    ids=["SIGTERM-1-worker", "SIGINT-1-worker", "SIGTERM-2-workers"],
)
def test_a_stop_signal_stops_the_gateway_and_its_managed_chain_and_exits_cleanly(
    tmp_path: Path, stop_signal: signal.Signals, workers: str
) -> None:
    env = ledger_env(tmp_path / "data", "ganache", free_port(), LEDGER_WORKERS=workers)
    gateway = start_gateway(env, tmp_path / "gateway.log")
    chain_port = gateway.chain_port
    assert chain_port is not None
    try:
        assert chain_processes(chain_port) != []  # the gateway did start a chain

        gateway.process.send_signal(stop_signal)
        exit_code = gateway.process.wait(timeout=60)
    finally:
        gateway.stop()

    assert exit_code == 0, gateway.log()
    assert chain_processes(chain_port) == []
    assert port_is_free("127.0.0.1", chain_port)
