"""Argument handling of the `ledger` command that needs no chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.cli import main, parse_time
from ledger.errors import MeterError


def test_times_are_unix_seconds_or_zoned_iso8601() -> None:
    assert parse_time("1700000000") == 1_700_000_000
    assert parse_time("2024-01-01T00:00:00Z") == 1_704_067_200
    assert parse_time("2024-01-01T01:00:00+01:00") == 1_704_067_200


@pytest.mark.parametrize("bad", ["yesterday", "2024-01-01T00:00:00"])
def test_unparseable_or_zoneless_times_are_refused(bad: str) -> None:
    with pytest.raises(MeterError):
        parse_time(bad)


def test_keygen_writes_a_private_key_and_prints_its_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "meter.pem"
    assert main(["meter", "keygen", "--algorithm", "secp256k1", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["algorithm"] == "secp256k1"
    assert len(bytes.fromhex(printed["public_key"][2:])) == 65
    assert out.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert out.stat().st_mode & 0o777 == 0o600


def test_keygen_refuses_to_overwrite_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "meter.pem"
    out.write_text("precious")
    assert main(["meter", "keygen", "--out", str(out)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert out.read_text() == "precious"
