"""`ledger meter ...` against a real chain: register, rotate, revoke, and read the history back."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from ledger.chain.client import Chain, LocalChain, free_port
from ledger.meters.keys import KeyAlgorithm, encode_public_key, generate_key
from ledger.meters.registry import MAX_VALID_FROM_AHEAD_S
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.chain import advance_time, dev_account, latest_time
from tests.fixtures.ed25519_vectors import IDENTITY_KEY
from tests.fixtures.gateway import LEDGER_BIN, write_public_pem


def run_ledger(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LEDGER_BIN), *args], env=env, capture_output=True, text=True, timeout=120
    )


def ledger_json(env: dict[str, str], *args: str) -> Any:
    result = run_ledger(env, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def cli_env(ganache: LocalChain, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_RPC_URL=ganache.rpc_url,
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        LEDGER_DATA_DIR=str(data_dir),
    )
    return env


def test_meter_history_survives_rotation_and_revocation(
    ganache: LocalChain, chain: Chain, tmp_path: Path
) -> None:
    env = cli_env(ganache, tmp_path / "data")
    first = write_public_pem(tmp_path / "first.pem", KeyAlgorithm.P256)
    second = write_public_pem(tmp_path / "second.pem", KeyAlgorithm.ED25519)
    owner = dev_account(1).address
    registered_at = latest_time(chain)

    ledger_json(env, "meter", "register", "MTR-CLI-1", "--owner", owner,
                "--public-key-file", str(tmp_path / "first.pem"),
                "--valid-from", str(registered_at))  # fmt: skip
    advance_time(chain, 100)
    rotated = ledger_json(env, "meter", "rotate", "MTR-CLI-1",
                          "--public-key-file", str(tmp_path / "second.pem"))  # fmt: skip
    rotated_from = rotated["keys"][1]["valid_from"]
    advance_time(chain, 100)
    shown = ledger_json(env, "meter", "revoke", "MTR-CLI-1")
    revoked_at = shown["keys"][1]["revoked_at"]

    history = ledger_json(env, "meter", "show", "MTR-CLI-1")
    assert history["owner"] == owner
    assert [(k["epoch"], k["algorithm"], k["public_key"]) for k in history["keys"]] == [
        (0, "p256", first),
        (1, "ed25519", second),
    ]
    assert history["keys"][0]["valid_from"] == registered_at
    assert history["keys"][0]["revoked_at"] is None
    assert registered_at < rotated_from < revoked_at

    # Before the revocation, the revoked key is still the one that was valid: old readings verify.
    before_revocation = ledger_json(env, "meter", "show", "MTR-CLI-1", "--at", str(revoked_at - 1))
    assert (before_revocation["epoch"], before_revocation["public_key"]) == (1, second)
    during_first = ledger_json(env, "meter", "show", "MTR-CLI-1", "--at", str(rotated_from - 1))
    assert (during_first["epoch"], during_first["public_key"]) == (0, first)

    after = run_ledger(env, "meter", "show", "MTR-CLI-1", "--at", str(revoked_at))
    assert after.returncode == 1
    assert "MeterRegistryNoKeyAt" in after.stderr


def test_register_with_a_bad_owner_fails_with_a_clear_error(
    ganache: LocalChain, tmp_path: Path
) -> None:
    env = cli_env(ganache, tmp_path / "data")
    write_public_pem(tmp_path / "key.pem", KeyAlgorithm.P256)
    result = run_ledger(env, "meter", "register", "MTR-CLI-2", "--owner", "not-an-address",
                        "--public-key-file", str(tmp_path / "key.pem"))  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("error [invalid_meter]")
    assert "Traceback" not in result.stderr


def test_unreachable_chain_is_reported_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_RPC_URL=f"http://127.0.0.1:{free_port()}",
        LEDGER_OPERATOR_KEY=DEV_OPERATOR_KEY,
        LEDGER_DATA_DIR=str(tmp_path),
    )
    result = run_ledger(env, "meter", "show", "MTR-X")
    assert result.returncode == 1
    assert result.stderr.startswith("error [chain_unavailable]")
    assert "Traceback" not in result.stderr


def operator_nonce(chain: Chain) -> int:
    return int(chain.w3.eth.get_transaction_count(chain.operator.address, "pending"))


def test_register_with_valid_from_beyond_ten_years_is_refused_and_mines_nothing(
    ganache: LocalChain, chain: Chain, tmp_path: Path
) -> None:
    env = cli_env(ganache, tmp_path / "data")
    write_public_pem(tmp_path / "key.pem", KeyAlgorithm.P256)
    far = latest_time(chain) + MAX_VALID_FROM_AHEAD_S + 86_400
    ledger_json(env, "deploy")  # the first command in a data directory deploys the contracts
    nonce = operator_nonce(chain)

    result = run_ledger(env, "meter", "register", "MTR-CLI-FAR", "--owner", dev_account(1).address,
                        "--public-key-file", str(tmp_path / "key.pem"),
                        "--valid-from", str(far))  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.startswith("error [invalid_meter]")
    assert operator_nonce(chain) == nonce


def test_register_reads_an_ocmf_style_der_base64_key_and_raw_x_y(
    ganache: LocalChain, tmp_path: Path
) -> None:
    env = cli_env(ganache, tmp_path / "data")
    keys = [generate_key(KeyAlgorithm.SECP256K1).public_key() for _ in range(2)]
    der_base64 = base64.b64encode(
        keys[0].public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    raw_x_y = encode_public_key(keys[1])[1:].hex()
    owner = dev_account(1).address

    first = ledger_json(env, "meter", "register", "MTR-CLI-DER", "--owner", owner,
                        "--public-key", der_base64)  # fmt: skip
    second = ledger_json(env, "meter", "register", "MTR-CLI-RAW", "--owner", owner,
                         "--public-key", raw_x_y, "--algorithm", "secp256k1")  # fmt: skip

    assert [(k["algorithm"], k["public_key"]) for k in first["keys"]] == [
        ("secp256k1", "0x" + encode_public_key(keys[0]).hex())
    ]
    assert second["keys"][0]["public_key"] == "0x" + encode_public_key(keys[1]).hex()


def test_register_refuses_the_ed25519_identity_key(ganache: LocalChain, tmp_path: Path) -> None:
    env = cli_env(ganache, tmp_path / "data")

    result = run_ledger(env, "meter", "register", "MTR-CLI-WEAK", "--owner",
                        dev_account(1).address, "--public-key", IDENTITY_KEY,
                        "--algorithm", "ed25519")  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.startswith("error [invalid_meter]")
    assert "small order" in result.stderr


def test_revoke_with_compromised_since_backdates_the_revocation_and_counts_suspects(
    ganache: LocalChain, chain: Chain, tmp_path: Path
) -> None:
    env = cli_env(ganache, tmp_path / "data")
    write_public_pem(tmp_path / "key.pem", KeyAlgorithm.P256)
    start = latest_time(chain) - 7_200
    ledger_json(env, "meter", "register", "MTR-CLI-CMP", "--owner", dev_account(1).address,
                "--public-key-file", str(tmp_path / "key.pem"),
                "--valid-from", str(start))  # fmt: skip

    revoked = ledger_json(env, "meter", "revoke", "MTR-CLI-CMP",
                          "--compromised-since", str(start + 600))  # fmt: skip
    suspects = ledger_json(env, "meter", "suspect-readings", "MTR-CLI-CMP")

    assert revoked["keys"][0]["revoked_at"] == start + 600
    assert revoked["suspect_readings"] == 0
    assert (suspects["meter_id"], suspects["suspect_count"], suspects["readings"]) == (
        "MTR-CLI-CMP",
        0,
        [],
    )


def test_revoke_with_a_compromise_time_in_the_future_is_refused_by_name(
    ganache: LocalChain, chain: Chain, tmp_path: Path
) -> None:
    env = cli_env(ganache, tmp_path / "data")
    write_public_pem(tmp_path / "key.pem", KeyAlgorithm.P256)
    ledger_json(env, "meter", "register", "MTR-CLI-CMPF", "--owner", dev_account(1).address,
                "--public-key-file", str(tmp_path / "key.pem"))  # fmt: skip

    result = run_ledger(env, "meter", "revoke", "MTR-CLI-CMPF",
                        "--compromised-since", str(latest_time(chain) + 86_400))  # fmt: skip

    assert result.returncode == 1
    assert "MeterRegistryCompromiseInFuture" in result.stderr
