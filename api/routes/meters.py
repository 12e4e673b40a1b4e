"""Meters: public read access to a meter's owner and key history; registrar-only changes.

The write routes act through the gateway's operator key, which holds REGISTRAR_ROLE in the
MeterRegistry, and answer only to the registrar bearer token (api/auth.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from cryptography.exceptions import UnsupportedAlgorithm
from fastapi import APIRouter, Path, Query
from web3 import Web3

from api.auth import RegistrarDep
from api.deps import NodeDep
from api.schemas import (
    ErrorPublic,
    KeyEpochPublic,
    MeterChangePublic,
    MeterPublic,
    MeterRegisterIn,
    MeterRotateIn,
)
from ledger.errors import ChainUnavailable, LedgerError, MeterError
from ledger.meters import (
    KeyAlgorithm,
    MeterAdmin,
    MeterPublicKey,
    algorithm_of,
    decode_public_key,
    load_public_key,
)
from ledger.node import LedgerNode

router = APIRouter(prefix="/v1/meters", tags=["meters"])

MeterIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=66,
        # Characters, not bytes: a multi-byte serial over 32 bytes is still refused by the
        # ledger with `invalid_meter`.
        pattern=r"^(0x[0-9a-fA-F]{64}|[^\x00-\x1f\x7f]{1,32})$",
        description="the meter serial (1-32 printable bytes) or 0x + 64 hex digits",
    ),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "unknown meter, or no key at that time"},
    422: {"model": ErrorPublic, "description": "malformed meter id or parameter"},
}


@router.get("/{meter_id}", response_model=MeterPublic, responses=_ERRORS)
def get_meter(meter_id: MeterIdPath, node: NodeDep) -> dict[str, Any]:
    """The meter's owner and its full key history, as the MeterRegistry holds it."""
    return node.meters.show(meter_id).as_dict()


@router.get("/{meter_id}/key", response_model=KeyEpochPublic, responses=_ERRORS)
def get_meter_key_at(
    meter_id: MeterIdPath,
    node: NodeDep,
    at: Annotated[int, Query(ge=0, lt=2**64, description="Unix time (s)")],
) -> dict[str, Any]:
    """The key that was valid for the meter at time `at`."""
    return node.meters.key_at(meter_id, at).as_dict()


_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "`unauthorized`: no or another bearer token"},
    403: {"model": ErrorPublic, "description": "`registrar_api_disabled`: no token configured"},
    404: {"model": ErrorPublic, "description": "`meter_registry_unknown_meter`"},
    409: {
        "model": ErrorPublic,
        "description": "the registry's state refuses it, e.g. "
        "`meter_registry_meter_already_registered`, `meter_registry_key_already_revoked`",
    },
    422: {
        "model": ErrorPublic,
        "description": "`invalid_request` (fields), `invalid_meter` (id, owner or key), "
        "`meter_registry_valid_from_in_past`, `meter_registry_zero_owner`",
    },
    503: {"model": ErrorPublic, "description": "chain unreachable"},
}


@router.post(
    "",
    status_code=201,
    response_model=MeterChangePublic,
    responses=_WRITE_ERRORS,
    dependencies=[RegistrarDep],
)
def register_meter(body: MeterRegisterIn, node: NodeDep) -> dict[str, Any]:
    """Registers a meter with its owner and first key (registrar only)."""
    owner_hex = body.owner[2:]
    # web3 takes any mixed-case address; EIP-55 makes one with a broken checksum a typo.
    mixed_case = owner_hex != owner_hex.lower() and owner_hex != owner_hex.upper()
    if mixed_case and not Web3.is_checksum_address(body.owner):
        raise MeterError(f"owner {body.owner} has a broken EIP-55 checksum")
    key = _public_key(body.public_key, body.algorithm)
    return _change(
        node,
        body.meter_id,
        lambda meters: meters.register(body.meter_id, body.owner, key, body.valid_from),
    )


@router.post(
    "/{meter_id}/rotate",
    response_model=MeterChangePublic,
    responses=_WRITE_ERRORS,
    dependencies=[RegistrarDep],
)
def rotate_meter_key(meter_id: MeterIdPath, body: MeterRotateIn, node: NodeDep) -> dict[str, Any]:
    """Appends a key epoch from `valid_from` on (registrar only); earlier keys stay on record."""
    key = _public_key(body.public_key, body.algorithm)
    return _change(node, meter_id, lambda meters: meters.rotate(meter_id, key, body.valid_from))


@router.post(
    "/{meter_id}/revoke",
    response_model=MeterChangePublic,
    responses=_WRITE_ERRORS,
    dependencies=[RegistrarDep],
)
def revoke_meter_key(meter_id: MeterIdPath, node: NodeDep) -> dict[str, Any]:
    """Revokes the key valid now, from this block's time on (registrar only).

    Readings signed before the revocation still verify against it.
    """
    return _change(node, meter_id, lambda meters: meters.revoke(meter_id))


def _change(
    node: LedgerNode, meter_id: str, transact: Callable[[MeterAdmin], dict[str, Any]]
) -> dict[str, Any]:
    """Sends one registrar transaction; the meter as it stands after it, with the transaction.

    Raises:
        ChainUnavailable: the chain failed to answer, before or after the transaction was sent
            (GET the meter to see whether it was mined).
    """
    meters = node.meters
    try:
        receipt = transact(meters)
        history = meters.show(meter_id).as_dict()
    except LedgerError:
        raise
    except Exception as error:  # noqa: BLE001 - any transport failure means unreachable
        raise ChainUnavailable(rpc_url=node.chain.rpc_url, reason=str(error)) from error
    return {
        **history,
        "transaction_hash": "0x" + bytes(receipt["transactionHash"]).hex(),
        "block_number": receipt["blockNumber"],
    }


def _public_key(text: str, algorithm: str | None) -> MeterPublicKey:
    """Reads a key as `ledger meter` does: PEM (algorithm from the key) or hex (as `algorithm`)."""
    if text.lstrip().startswith("-----BEGIN"):
        if "PRIVATE KEY" in text:
            raise MeterError("send the meter's public key: its private key never leaves the meter")
        try:
            key = load_public_key(text.encode())
        except UnsupportedAlgorithm as error:  # a curve `cryptography` does not know at all
            raise MeterError(f"unsupported public key: {error}") from error
        if algorithm is not None and algorithm_of(key).label != algorithm:
            raise MeterError(f"the PEM key is {algorithm_of(key).label}, not {algorithm}")
        return key
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as error:
        raise MeterError("public_key must be PEM or 0x-hex") from error
    return decode_public_key(KeyAlgorithm.from_label(algorithm or "p256"), raw)
