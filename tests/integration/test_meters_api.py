"""Registrar routes (POST /v1/meters, .../rotate, .../revoke) over real HTTP, on Ganache and Anvil.

One gateway per chain serves the whole module (each test uses its own meter ids); only the test
of a gateway without a registrar token starts another one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.chain import connect, free_port
from ledger.meters import KeyAlgorithm, generate_key, private_key_pem
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.chain import dev_account
from tests.fixtures.gateway import Gateway, ledger_env, start_gateway, write_public_pem

TOKEN = "registrar-secret-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OWNER = dev_account(1).address
HOUR = 3_600


@pytest.fixture(scope="module", params=["ganache", "anvil"])
def registrar(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway with LEDGER_REGISTRAR_TOKEN set, shared by the module's tests on one chain."""
    kind: str = request.param
    tmp = tmp_path_factory.mktemp(f"registrar-{kind}")
    env = ledger_env(tmp / "data", kind, free_port(), LEDGER_REGISTRAR_TOKEN=TOKEN)
    gateway = start_gateway(env, tmp / "gateway.log")
    yield gateway
    gateway.stop()


def post(
    gateway: Gateway, path: str, body: dict[str, Any] | None = None, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/v1/meters{path}",
        json=body,
        headers=AUTH if not headers else headers,
        timeout=60,
    )


def registration(meter_id: str, public_key: str, **extra: Any) -> dict[str, Any]:
    """A register body whose key is valid from an hour ago."""
    return {
        "meter_id": meter_id,
        "owner": OWNER,
        "public_key": public_key,
        "valid_from": int(time.time()) - HOUR,
        **extra,
    }


def error_code(response: httpx.Response) -> tuple[int, str]:
    code: str = response.json()["error"]["code"]
    return response.status_code, code


def new_pem(tmp_path: Path, algorithm: KeyAlgorithm = KeyAlgorithm.P256) -> tuple[str, str]:
    """A new public key as PEM text, and the 0x-hex the registry stores for it."""
    path = tmp_path / f"{algorithm.label}-{time.monotonic_ns()}.pem"
    stored = write_public_pem(path, algorithm)
    return path.read_text(), stored


def test_registrar_registers_rotates_and_revokes_and_get_serves_that_history(
    registrar: Gateway, tmp_path: Path
) -> None:
    first_pem, first = new_pem(tmp_path)
    _, second = new_pem(tmp_path, KeyAlgorithm.ED25519)
    body = registration("MTR-API-1", first_pem)
    rotate_from = int(time.time()) + HOUR

    registered = post(registrar, "", body)
    rotated = post(
        registrar,
        "/MTR-API-1/rotate",
        {"algorithm": "ed25519", "public_key": second, "valid_from": rotate_from},
    )
    revoked = post(registrar, "/MTR-API-1/revoke")
    shown = httpx.get(f"{registrar.base_url}/v1/meters/MTR-API-1")

    assert registered.status_code == 201, registered.text
    assert [(k["algorithm"], k["public_key"]) for k in registered.json()["keys"]] == [
        ("p256", first)
    ]
    assert rotated.status_code == 200, rotated.text
    assert [k["valid_from"] for k in rotated.json()["keys"]] == [body["valid_from"], rotate_from]
    assert revoked.status_code == 200, revoked.text
    history = shown.json()
    assert history == {
        k: v for k, v in revoked.json().items() if k not in ("transaction_hash", "block_number")
    }
    assert (history["meter_id"], history["owner"]) == ("MTR-API-1", OWNER)
    assert [(k["epoch"], k["algorithm"], k["public_key"]) for k in history["keys"]] == [
        (0, "p256", first),
        (1, "ed25519", second),
    ]
    # The key valid now is revoked; the scheduled one is not.
    assert history["keys"][0]["revoked_at"] is not None
    assert history["keys"][1]["revoked_at"] is None


def test_each_answer_carries_its_mined_transaction(registrar: Gateway, tmp_path: Path) -> None:
    chain = connect(f"http://127.0.0.1:{registrar.env['LEDGER_CHAIN_PORT']}", DEV_OPERATOR_KEY)

    answer = post(registrar, "", registration("MTR-API-TX", new_pem(tmp_path)[0])).json()

    receipt = chain.w3.eth.get_transaction_receipt(answer["transaction_hash"])
    assert (receipt["status"], receipt["blockNumber"]) == (1, answer["block_number"])


def test_register_without_a_bearer_token_is_unauthorized_and_writes_nothing(
    registrar: Gateway, tmp_path: Path
) -> None:
    response = httpx.post(
        f"{registrar.base_url}/v1/meters",
        json=registration("MTR-API-NOAUTH", new_pem(tmp_path)[0]),
    )
    shown = httpx.get(f"{registrar.base_url}/v1/meters/MTR-API-NOAUTH")

    assert error_code(response) == (401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert error_code(shown) == (404, "meter_registry_unknown_meter")


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer other", f"Basic {TOKEN}", TOKEN],
)
@pytest.mark.parametrize("path", ["", "/MTR-API-X/rotate", "/MTR-API-X/revoke"])
def test_every_registrar_route_refuses_another_token_as_unauthorized(
    registrar: Gateway, authorization: str, path: str
) -> None:
    body = registration("MTR-API-X", "0x" + "11" * 32, algorithm="ed25519")
    if path:
        del body["meter_id"], body["owner"]

    response = post(registrar, path, body, Authorization=authorization)

    assert error_code(response) == (401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_registrar_routes_are_disabled_on_a_gateway_without_a_token(
    tmp_path: Path, chain_kind: str
) -> None:
    env = ledger_env(tmp_path / "data", chain_kind, free_port())
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        body = registration("MTR-API-OFF", new_pem(tmp_path)[0])
        answers = [post(gateway, "", body), post(gateway, "/MTR-API-OFF/revoke")]
        unauthenticated = httpx.post(f"{gateway.base_url}/v1/meters/MTR-API-OFF/revoke")
    finally:
        gateway.stop()

    assert [error_code(a) for a in answers] == [(403, "registrar_api_disabled")] * 2
    assert error_code(unauthenticated) == (403, "registrar_api_disabled")


def test_registering_a_meter_twice_conflicts(registrar: Gateway, tmp_path: Path) -> None:
    assert post(registrar, "", registration("MTR-API-DUP", new_pem(tmp_path)[0])).is_success

    again = post(registrar, "", registration("MTR-API-DUP", new_pem(tmp_path)[0]))

    assert error_code(again) == (409, "meter_registry_meter_already_registered")


def test_revoking_a_revoked_key_conflicts(registrar: Gateway, tmp_path: Path) -> None:
    assert post(registrar, "", registration("MTR-API-REV", new_pem(tmp_path)[0])).is_success
    assert post(registrar, "/MTR-API-REV/revoke").is_success

    again = post(registrar, "/MTR-API-REV/revoke")

    assert error_code(again) == (409, "meter_registry_key_already_revoked")


def test_rotating_an_unknown_meter_is_not_found(registrar: Gateway, tmp_path: Path) -> None:
    response = post(registrar, "/MTR-API-NONE/rotate", {"public_key": new_pem(tmp_path)[0]})

    assert error_code(response) == (404, "meter_registry_unknown_meter")


def test_rotation_into_the_past_is_refused(registrar: Gateway, tmp_path: Path) -> None:
    body = registration("MTR-API-PAST", new_pem(tmp_path)[0])
    assert post(registrar, "", body).is_success

    response = post(
        registrar,
        "/MTR-API-PAST/rotate",
        {"public_key": new_pem(tmp_path)[0], "valid_from": body["valid_from"] + 1},
    )

    assert error_code(response) == (422, "meter_registry_valid_from_in_past")


def test_registration_to_the_zero_address_is_refused(registrar: Gateway, tmp_path: Path) -> None:
    body = registration("MTR-API-ZERO", new_pem(tmp_path)[0], owner="0x" + "00" * 20)

    assert error_code(post(registrar, "", body)) == (422, "meter_registry_zero_owner")


@pytest.mark.parametrize(
    "change",
    [
        {"public_key": None},
        {"owner": "alice"},
        {"algorithm": "rsa"},
        {"valid_from": -1},
        {"valid_from": 2**64},
        {"meter_id": ""},
        {"meter_id": "x" * 33},
        {"note": "unknown field"},
    ],
    ids=repr,
)
def test_malformed_register_body_is_invalid_request(
    registrar: Gateway, change: dict[str, Any]
) -> None:
    body = {**registration("MTR-API-BAD", "0x" + "11" * 32, algorithm="ed25519"), **change}
    body = {k: v for k, v in body.items() if v is not None}

    assert error_code(post(registrar, "", body)) == (422, "invalid_request")


def test_malformed_json_is_invalid_request(registrar: Gateway) -> None:
    response = httpx.post(
        f"{registrar.base_url}/v1/meters",
        content=b'{"meter_id": ',
        headers={**AUTH, "content-type": "application/json"},
    )

    assert error_code(response) == (422, "invalid_request")


def private_pem() -> str:
    return private_key_pem(generate_key(KeyAlgorithm.P256)).decode()


@pytest.mark.parametrize(
    ("public_key", "extra"),
    [
        ("0x" + "11" * 32, {}),  # 32 bytes are no P-256 point, the default algorithm
        ("0xnot-hex", {}),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", {}),
        ("private", {}),  # a private key must never be sent
        ("p256 pem", {"algorithm": "ed25519"}),  # a PEM key of another algorithm than declared
        ("p256 pem", {"owner": "0x" + OWNER[2:].swapcase()}),  # a broken checksum
    ],
    ids=["not-a-point", "not-hex", "not-a-key", "private-key", "algorithm-mismatch", "checksum"],
)
def test_unusable_key_or_owner_is_invalid_meter(
    registrar: Gateway, tmp_path: Path, public_key: str, extra: dict[str, str]
) -> None:
    if public_key == "private":
        public_key = private_pem()
    elif public_key == "p256 pem":
        public_key = new_pem(tmp_path)[0]
    body = registration("MTR-API-KEY", public_key, **extra)

    response = post(registrar, "", body)

    assert error_code(response) == (422, "invalid_meter")
    shown = httpx.get(f"{registrar.base_url}/v1/meters/MTR-API-KEY")
    assert error_code(shown) == (404, "meter_registry_unknown_meter")
