"""`ledger serve`'s workers start with glibc's mmap threshold fixed (`ledger/serving.py`), so
the large buffers of a request go back to the system when freed; an operator's own setting is
kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gateway import child_pids
from ledger.chain.client import free_port
from ledger.serving import MMAP_THRESHOLD_ENV, keep_large_buffers_unmapped
from tests.fixtures.gateway import ledger_env, start_gateway


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def _workers(gateway_pid: int) -> list[int]:
    """The uvicorn workers under the supervisor (spawned: their command line says so)."""
    return [
        pid
        for pid in child_pids(gateway_pid)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_the_workers_start_with_the_threshold_fixed_at_glibcs_default(tmp_path: Path) -> None:
    env = ledger_env(tmp_path / "data", "ganache", free_port(), LEDGER_WORKERS="2")
    env.pop(MMAP_THRESHOLD_ENV, None)
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        workers = _workers(gateway.process.pid)

        assert len(workers) == 2, gateway.log()
        assert [_environ(pid).get(MMAP_THRESHOLD_ENV) for pid in workers] == ["131072"] * 2
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    ("before", "after"), [({}, "131072"), ({MMAP_THRESHOLD_ENV: "65536"}, "65536")]
)
def test_an_operators_own_threshold_is_kept(before: dict[str, str], after: str) -> None:
    environ = dict(before)

    keep_large_buffers_unmapped(environ)

    assert environ == {MMAP_THRESHOLD_ENV: after}
