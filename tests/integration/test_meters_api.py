"""Registrar routes (POST /v1/meters, .../rotate, .../revoke) over real HTTP, on Ganache and Anvil.

One gateway per chain serves the whole module (each test uses its own meter ids); only the test
of a gateway without a registrar token starts another one.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from ledger.chain.client import Chain, connect, free_port
from ledger.chain.deployment import ensure_deployed
from ledger.meters.keys import (
    KeyAlgorithm,
    MeterPrivateKey,
    encode_public_key,
    generate_key,
    private_key_pem,
)
from ledger.meters.registry import MAX_VALID_FROM_AHEAD_S, meter_id_bytes
from ledger.readings.native import Reading, sign_reading
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.chain import dev_account
from tests.fixtures.ed25519_vectors import SMALL_ORDER_KEYS
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
    # No anchoring: the operator's nonce then moves only for registrar transactions, so a test
    # can show that a refused request mined nothing.
    env = ledger_env(
        tmp / "data", kind, free_port(), LEDGER_REGISTRAR_TOKEN=TOKEN, LEDGER_ANCHOR_ENABLED="false"
    )
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
        k: v
        for k, v in revoked.json().items()
        if k not in ("transaction_hash", "block_number", "suspect_readings")
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
        ("0x" + "11" * 32, {"algorithm": "p256"}),  # 32 bytes are no P-256 point
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


# Far-future key times (issue 9, item 3)

YEAR_10000 = 253_402_300_800  # 10000-01-01T00:00:00Z


def operator_chain(gateway: Gateway) -> Chain:
    return connect(f"http://127.0.0.1:{gateway.env['LEDGER_CHAIN_PORT']}", DEV_OPERATOR_KEY)


def operator_nonce(gateway: Gateway) -> int:
    chain = operator_chain(gateway)
    return int(chain.w3.eth.get_transaction_count(chain.operator.address, "pending"))


@pytest.mark.parametrize(
    ("valid_from", "expected"),
    [
        (YEAR_10000, "invalid_request"),
        (2**64 - 1, "invalid_request"),
        ("eleven years", "invalid_meter"),
    ],
    ids=["year-10000", "uint64-max", "beyond-the-horizon"],
)
def test_registration_with_a_far_future_valid_from_is_refused_and_mines_nothing(
    registrar: Gateway, tmp_path: Path, valid_from: int | str, expected: str
) -> None:
    start = (
        int(time.time()) + MAX_VALID_FROM_AHEAD_S + 86_400
        if valid_from == "eleven years"
        else valid_from
    )
    nonce = operator_nonce(registrar)

    response = post(
        registrar, "", registration("MTR-API-FAR", new_pem(tmp_path)[0], valid_from=start)
    )

    assert error_code(response) == (422, expected)
    assert operator_nonce(registrar) == nonce
    shown = httpx.get(f"{registrar.base_url}/v1/meters/MTR-API-FAR")
    assert error_code(shown) == (404, "meter_registry_unknown_meter")


def test_rotation_to_a_far_future_valid_from_is_refused_and_mines_nothing(
    registrar: Gateway, tmp_path: Path
) -> None:
    assert post(registrar, "", registration("MTR-API-FAR-ROT", new_pem(tmp_path)[0])).is_success
    nonce = operator_nonce(registrar)

    far = int(time.time()) + MAX_VALID_FROM_AHEAD_S + 86_400
    response = post(
        registrar,
        "/MTR-API-FAR-ROT/rotate",
        {"public_key": new_pem(tmp_path)[0], "valid_from": far},
    )

    assert error_code(response) == (422, "invalid_meter")
    assert operator_nonce(registrar) == nonce


def register_on_chain(gateway: Gateway, meter_id: str, valid_from: int) -> None:
    """Registers a meter with a contract call, past the gateway's checks (as an old gateway or
    another registrar could have)."""
    chain = operator_chain(gateway)
    registry = ensure_deployed(chain, Path(gateway.env["LEDGER_DATA_DIR"])).meter_registry
    key = encode_public_key(generate_key(KeyAlgorithm.P256).public_key())
    chain.transact(
        registry.functions.registerMeter(
            meter_id_bytes(meter_id), OWNER, int(KeyAlgorithm.P256), key, valid_from
        )
    )


@pytest.mark.parametrize("valid_from", [YEAR_10000, 2**64 - 1], ids=["year-10000", "uint64-max"])
def test_a_meter_whose_key_starts_after_year_9999_on_chain_is_still_shown(
    registrar: Gateway, valid_from: int
) -> None:
    meter = f"MTR-API-Y10K-{valid_from % 1000}"
    register_on_chain(registrar, meter, valid_from)

    shown = httpx.get(f"{registrar.base_url}/v1/meters/{meter}")

    assert shown.status_code == 200, shown.text
    key = shown.json()["keys"][0]
    assert (key["valid_from"], key["valid_from_utc"]) == (valid_from, None)


def test_revoking_a_meter_whose_key_starts_after_year_9999_answers_200(
    registrar: Gateway,
) -> None:
    register_on_chain(registrar, "MTR-API-Y10K-REV", YEAR_10000)

    revoked = post(registrar, "/MTR-API-Y10K-REV/revoke")

    assert revoked.status_code == 200, revoked.text
    key = revoked.json()["keys"][0]
    assert key["valid_from_utc"] is None
    assert key["revoked_at_utc"] is not None


# Weak keys (issue 9, item 4)


@pytest.mark.parametrize(("name", "encoded"), SMALL_ORDER_KEYS[:2], ids=["identity", "order-2"])
def test_registering_a_small_order_ed25519_key_is_invalid_meter_and_mines_nothing(
    registrar: Gateway, name: str, encoded: str
) -> None:
    nonce = operator_nonce(registrar)

    response = post(
        registrar,
        "",
        registration("MTR-API-WEAK", "0x" + encoded, algorithm="ed25519"),
    )

    assert error_code(response) == (422, "invalid_meter")
    assert "small order" in response.json()["error"]["message"]
    assert operator_nonce(registrar) == nonce


@pytest.mark.parametrize("form", ["der-base64", "raw-x-y", "compressed"])
def test_registration_accepts_the_key_forms_of_ocmf_records(registrar: Gateway, form: str) -> None:
    public = generate_key(KeyAlgorithm.P256).public_key()
    stored = encode_public_key(public)
    text = {
        "der-base64": base64.b64encode(
            public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode(),
        "raw-x-y": stored[1:].hex(),
        "compressed": public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        ).hex(),
    }[form]
    meter = f"MTR-API-FORM-{form}"

    response = post(registrar, "", registration(meter, text, algorithm="p256"))

    assert response.status_code == 201, response.text
    assert response.json()["keys"][0]["public_key"] == "0x" + stored.hex()


# Revocation from a compromise time (issue 9, item 6)


def signed_reading(key: MeterPrivateKey, meter_id: str, seq: int, timestamp: int) -> dict[str, str]:
    reading = Reading(
        chain_id=1337,
        meter_id=meter_id_bytes(meter_id),
        seq=seq,
        timestamp=timestamp,
        import_wh=1_000 * seq,
        export_wh=0,
    )
    return {
        "meter_id": meter_id,
        "canonical": "0x" + reading.encode().hex(),
        "signature": "0x" + sign_reading(key, reading).hex(),
    }


def post_reading(gateway: Gateway, body: dict[str, str]) -> dict[str, Any]:
    response = httpx.post(f"{gateway.base_url}/v1/readings", json=body, timeout=30)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


def stolen_key_meter(gateway: Gateway, meter: str) -> tuple[MeterPrivateKey, int]:
    """A meter registered through the gateway, its key valid from two hours ago, with one
    reading accepted an hour ago (seq 1) -- the thief's, as it will turn out."""
    key = generate_key(KeyAlgorithm.P256)
    now = int(time.time())
    stored = "0x" + encode_public_key(key.public_key()).hex()
    body = {**registration(meter, stored), "valid_from": now - 2 * HOUR}
    assert post(gateway, "", body).status_code == 201
    assert post_reading(gateway, signed_reading(key, meter, 1, now - HOUR))["status"] == "accepted"
    return key, now


def test_a_reading_dated_after_the_compromise_is_refused_once_revoked(
    registrar: Gateway,
) -> None:
    key, now = stolen_key_meter(registrar, "MTR-API-STOLEN")

    revoked = post(registrar, "/MTR-API-STOLEN/revoke", {"compromised_since": now - 90 * 60})
    # Dated before the revocation was sent, after the compromise: the thief's backdating.
    later = post_reading(registrar, signed_reading(key, "MTR-API-STOLEN", 2, now - 30 * 60))

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["keys"][0]["revoked_at"] == now - 90 * 60
    assert (later["status"], later["code"]) == ("rejected", "key_revoked")


def test_revoking_from_a_compromise_time_counts_and_lists_the_readings_it_puts_in_doubt(
    registrar: Gateway,
) -> None:
    _, now = stolen_key_meter(registrar, "MTR-API-SUSPECT")

    revoked = post(registrar, "/MTR-API-SUSPECT/revoke", {"compromised_since": now - 90 * 60})
    listed = httpx.get(
        f"{registrar.base_url}/v1/meters/MTR-API-SUSPECT/suspect-readings", headers=AUTH
    )

    assert revoked.json()["suspect_readings"] == 1
    assert listed.status_code == 200, listed.text
    assert listed.json()["suspect_count"] == 1
    assert [(r["seq"], r["key_epoch"]) for r in listed.json()["readings"]] == [(1, 0)]


def test_a_plain_revocation_puts_no_reading_in_doubt(registrar: Gateway) -> None:
    stolen_key_meter(registrar, "MTR-API-PLAIN-REV")

    revoked = post(registrar, "/MTR-API-PLAIN-REV/revoke")

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["suspect_readings"] == 0


def test_suspect_readings_answer_only_the_registrar(registrar: Gateway) -> None:
    response = httpx.get(f"{registrar.base_url}/v1/meters/MTR-API-SUSPECT/suspect-readings")

    assert error_code(response) == (401, "unauthorized")


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (HOUR, "meter_registry_compromise_in_future"),
        (-3 * HOUR, "meter_registry_compromise_before_key"),
    ],
    ids=["future", "before-key"],
)
def test_a_compromise_time_outside_the_key_window_is_refused_and_mines_nothing(
    registrar: Gateway, tmp_path: Path, offset: int, expected: str
) -> None:
    meter = f"MTR-API-CMP-{offset}"
    body = {**registration(meter, new_pem(tmp_path)[0]), "valid_from": int(time.time()) - 2 * HOUR}
    assert post(registrar, "", body).status_code == 201
    nonce = operator_nonce(registrar)

    response = post(registrar, f"/{meter}/revoke", {"compromised_since": int(time.time()) + offset})

    assert error_code(response) == (422, expected)
    assert operator_nonce(registrar) == nonce
