"""`ledger serve` with settings that cannot work: one line naming the variable, a non-zero exit,
no traceback, and nothing started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LEDGER_BIN = Path(sys.executable).parent / "ledger"
NOT_A_KEY = "0xthis-is-not-a-private-key"


def serve(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATA_DIR=str(tmp_path / "data"), LEDGER_PORT="0", **settings)
    return subprocess.run(
        [str(LEDGER_BIN), "serve"], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "bad_key", [NOT_A_KEY, "0x1234", "0x" + "00" * 32], ids=["not-hex", "short", "zero"]
)
def test_serve_with_a_bad_operator_key_prints_one_config_error_line(
    tmp_path: Path, bad_key: str
) -> None:
    result = serve(tmp_path, LEDGER_OPERATOR_KEY=bad_key)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error [config_error]: invalid settings: LEDGER_OPERATOR_KEY")
    assert bad_key not in result.stderr
    assert not (tmp_path / "data").exists()  # refused before a chain or database was started


def test_serve_against_an_external_chain_without_a_key_names_the_variable(
    tmp_path: Path,
) -> None:
    result = serve(tmp_path, LEDGER_RPC_URL="http://127.0.0.1:9")

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "LEDGER_OPERATOR_KEY must be set when LEDGER_RPC_URL is" in result.stderr
    assert "Traceback" not in result.stderr
