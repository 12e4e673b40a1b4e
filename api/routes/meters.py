"""Meters: public read access to a meter's owner and key history; registrar-only changes.

A meter's history is answered from the event indexer's read model, the MeterRegistry only where
the read model is behind for that meter (`ledger/meters/history.py`): a few chain calls however
many key epochs it has, and always what the registry holds at the head. After each registrar
transaction the gateway indexes at once, so the meter it answers with, and the next GET, come
from the read model too.

The write routes act through the gateway's operator key, which holds REGISTRAR_ROLE in the
MeterRegistry, and answer only to the registrar bearer token (api/auth.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from web3 import Web3
from web3.exceptions import ProviderConnectionError, TimeExhausted, Web3RPCError

from api.access import public, roles
from api.deps import NodeDep, RegistrarDep
from api.schemas.errors import ErrorPublic
from api.schemas.meters import (
    KeyEpochPublic,
    MeterChangePublic,
    MeterPublic,
    MeterRegisterIn,
    MeterRevokeIn,
    MeterRevokePublic,
    MeterRotateIn,
    SuspectReadingsPublic,
)
from api.schemas.readings import StoredReadingPublic
from ledger.errors import ChainUnavailable, MeterError
from ledger.meters.keys import parse_public_key
from ledger.meters.registry import (
    KeyEpochView,
    MeterAdmin,
    MeterView,
    meter_id_bytes,
    suspect_readings,
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


@router.get("/{meter_id}", response_model=MeterPublic, responses=_ERRORS, openapi_extra=public())
def get_meter(meter_id: MeterIdPath, node: NodeDep) -> MeterView:
    """The meter's owner and its full key history, as the MeterRegistry holds it."""
    return node.meter_history.show(meter_id)


@router.get(
    "/{meter_id}/key", response_model=KeyEpochPublic, responses=_ERRORS, openapi_extra=public()
)
def get_meter_key_at(
    meter_id: MeterIdPath,
    node: NodeDep,
    at: Annotated[int, Query(ge=0, lt=2**64, description="Unix time (s)")],
) -> KeyEpochView:
    """The key that was valid for the meter at time `at`."""
    return node.meters.key_at(meter_id, at)


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
        "description": "`invalid_request` (fields), `invalid_meter` (id, owner, key, or a "
        "valid_from more than about ten years ahead), `meter_registry_valid_from_in_past`, "
        "`meter_registry_zero_owner`, `meter_registry_weak_public_key`, "
        "`meter_registry_compromise_in_future`, `meter_registry_compromise_before_key`",
    },
    503: {"model": ErrorPublic, "description": "chain unreachable"},
}


@router.post(
    "",
    status_code=201,
    response_model=MeterChangePublic,
    responses=_WRITE_ERRORS,
    openapi_extra=roles("registrar"),
)
def register_meter(_: RegistrarDep, body: MeterRegisterIn, node: NodeDep) -> MeterChangePublic:
    """Registers a meter with its owner and first key (registrar only)."""
    owner_hex = body.owner[2:]
    # web3 takes any mixed-case address; EIP-55 makes one with a broken checksum a typo.
    mixed_case = owner_hex != owner_hex.lower() and owner_hex != owner_hex.upper()
    if mixed_case and not Web3.is_checksum_address(body.owner):
        raise MeterError(f"owner {body.owner} has a broken EIP-55 checksum")
    key = parse_public_key(body.public_key, body.algorithm)
    return _change(
        node,
        body.meter_id,
        lambda meters: meters.register(body.meter_id, body.owner, key, body.valid_from),
    )


@router.post(
    "/{meter_id}/rotate",
    response_model=MeterChangePublic,
    responses=_WRITE_ERRORS,
    openapi_extra=roles("registrar"),
)
def rotate_meter_key(
    _: RegistrarDep, meter_id: MeterIdPath, body: MeterRotateIn, node: NodeDep
) -> MeterChangePublic:
    """Appends a key epoch from `valid_from` on (registrar only); earlier keys stay on record."""
    key = parse_public_key(body.public_key, body.algorithm)
    return _change(node, meter_id, lambda meters: meters.rotate(meter_id, key, body.valid_from))


@router.post(
    "/{meter_id}/revoke",
    response_model=MeterRevokePublic,
    responses=_WRITE_ERRORS,
    openapi_extra=roles("registrar"),
)
def revoke_meter_key(
    _: RegistrarDep,
    meter_id: MeterIdPath,
    node: NodeDep,
    body: Annotated[MeterRevokeIn | None, Body()] = None,
) -> MeterRevokePublic:
    """Revokes the key valid now (registrar only): from this block's time on, or from
    `compromised_since`, the time since which the key is known or feared stolen.

    Readings of the key timestamped before that still verify. Those timestamped at or after it
    are refused from now on (`key_revoked`) by this gateway process at once, by its other
    workers and other gateways within `LEDGER_KEY_REVOCATION_POLL_S`; the ones already accepted
    are counted in `suspect_readings` and listed by GET .../suspect-readings.
    """
    compromised_since = None if body is None else body.compromised_since
    meter, receipt = _send(node, meter_id, lambda m: m.revoke(meter_id, compromised_since))
    # Before answering: a reading checked after this answer must see the revocation.
    node.keys.forget(meter_id_bytes(meter_id))
    suspects = suspect_readings(node.store, meter, limit=0)
    return MeterRevokePublic.of(meter, receipt, suspect_readings=suspects.count)


@router.get(
    "/{meter_id}/suspect-readings",
    response_model=SuspectReadingsPublic,
    responses=_WRITE_ERRORS,
    openapi_extra=roles("registrar"),
)
def get_suspect_readings(
    _: RegistrarDep,
    meter_id: MeterIdPath,
    node: NodeDep,
    after_seq: Annotated[
        int, Query(ge=0, lt=2**64, description="page on: only readings with a higher seq")
    ]
    | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="most readings listed")] = 1000,
) -> SuspectReadingsPublic:
    """Stored readings signed under a key of the meter and timestamped at or after that key's
    revocation (registrar only): accepted before a revocation from a compromise time was made,
    they may be the thief's. By seq, with their receipts; `suspect_count` counts all of them."""
    found = suspect_readings(
        node.store,
        node.meter_history.show(meter_id),
        after_seq=-1 if after_seq is None else after_seq,
        limit=limit,
    )
    return SuspectReadingsPublic(
        meter_id=found.meter_id,
        suspect_count=found.count,
        readings=[StoredReadingPublic.of(r, node.proofs.anchoring(r)) for r in found.readings],
    )


# What a chain that did not answer raises (requests' errors are OSErrors); anything else, such as
# a ValueError while rendering what the chain holds, is a bug to see, not an outage to report.
_UNREACHABLE = (OSError, ProviderConnectionError, TimeExhausted, Web3RPCError)


def _change(
    node: LedgerNode, meter_id: str, transact: Callable[[MeterAdmin], dict[str, Any]]
) -> MeterChangePublic:
    """Sends one registrar transaction; the meter as it stands after it, with the transaction."""
    return MeterChangePublic.of(*_send(node, meter_id, transact))


def _send(
    node: LedgerNode, meter_id: str, transact: Callable[[MeterAdmin], dict[str, Any]]
) -> tuple[MeterView, dict[str, Any]]:
    """Sends one registrar transaction, indexes it (read your writes: the meter from the read
    model, here and in the next GET); the meter read after it, and the receipt.

    Raises:
        ChainUnavailable: the chain failed to answer, before or after the transaction was sent
            (GET the meter to see whether it was mined).
    """
    meters = node.meters
    try:
        receipt = transact(meters)
        node.indexer.index_now()
        return node.meter_history.show(meter_id), receipt
    except _UNREACHABLE as error:
        raise ChainUnavailable(rpc_url=node.chain.rpc_url, reason=str(error)) from error
