"""free_port: the ports of LEDGER_PORT_RANGE in turn, a taken one skipped; else the system's."""

from __future__ import annotations

import os
import socket

import pytest

from ledger.chain.client import PORT_RANGE_ENV, free_port, port_is_free
from ledger.errors import ToolchainError
from ledger.settings import parse_port_range


def taken_port(port: int = 0) -> tuple[socket.socket, int]:
    """A listener on `port` (0: one the system picks) and its port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    return listener, int(listener.getsockname()[1])


def free_window(size: int) -> int:
    """The first of `size` consecutive ports that are all free now, from this test worker's own
    range (tests/conftest.py gives each xdist worker one, below the system's ephemeral ports;
    without xdist, the whole of that span). Neighbours of a port the system picks can be any
    process's: an outgoing connection's local port once made this test fail."""
    low, high = parse_port_range(os.environ.get(PORT_RANGE_ENV, "20000-31999"))
    for first in range(high - size + 1, low - 1, -size):
        if all(port_is_free("127.0.0.1", port) for port in range(first, first + size)):
            return first
    raise AssertionError(f"no {size} consecutive free ports in {low}-{high}")


def test_the_ports_of_the_range_come_in_turn_and_a_taken_one_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listener, taken = taken_port(free_window(5) + 2)
    with listener:
        monkeypatch.setenv(PORT_RANGE_ENV, f"{taken - 2}-{taken + 2}")
        picked = [free_port() for _ in range(8)]
    assert taken not in picked
    assert set(picked) == {taken - 2, taken - 1, taken + 1, taken + 2}
    # In turn: each of the four free ports once before any comes again.
    assert len(set(picked[:4])) == 4 and picked[4:] == picked[:4]


def test_a_range_with_nothing_free_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    listener, taken = taken_port()
    with listener:
        monkeypatch.setenv(PORT_RANGE_ENV, f"{taken}-{taken}")
        with pytest.raises(ToolchainError, match=f"no free port in {PORT_RANGE_ENV}"):
            free_port()


@pytest.mark.parametrize("text", ["", "20000", "20000-", "a-b", "30000-20000", "80-90", "1-70000"])
def test_a_malformed_range_is_refused(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    with pytest.raises(ValueError, match="expected LOW-HIGH"):
        parse_port_range(text)
    if text:  # an empty variable means unset
        monkeypatch.setenv(PORT_RANGE_ENV, text)
        with pytest.raises(ToolchainError, match=PORT_RANGE_ENV):
            free_port()


def test_without_a_range_the_system_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_RANGE_ENV, raising=False)
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", port))  # it is free
