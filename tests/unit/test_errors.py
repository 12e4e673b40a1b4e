"""Revert decoding and the HTTP error codes, without a chain."""

from __future__ import annotations

import importlib
import pkgutil
import re

from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError

import api
import ledger
import ledger.errors
from ledger.anchoring.anchorer import AnchorStuck
from ledger.anchoring.merkle import MerkleError
from ledger.chain.client import Chain
from ledger.chain.compiler import compile_contracts
from ledger.errors import ConfigError, ContractRevert, LedgerError, revert_status, snake_case
from ledger.sim.day_plan import MarketDayError
from ledger.sim.fleet import SimulationError
from ledger.store.backends import StoreError


def offline_chain() -> Chain:
    chain = Chain(w3=Web3(), rpc_url="offline", chain_id=0, operator=Account.create())
    for artifact in compile_contracts().values():
        chain.learn_errors(artifact.abi)
    return chain


def test_custom_error_data_decodes_to_its_name_and_arguments() -> None:
    selector = keccak(text="ReadingLedgerUnexpectedBatchId(uint256,uint256)")[:4]
    data = "0x" + (selector + encode(["uint256", "uint256"], [7, 3])).hex()
    revert = offline_chain().decode_revert(ContractCustomError(data, data=data))
    assert revert.error_name == "ReadingLedgerUnexpectedBatchId"
    assert revert.args_decoded == (7, 3)
    assert str(revert) == "ReadingLedgerUnexpectedBatchId(7, 3)"


def test_ganache_style_nested_revert_data_decodes_too() -> None:
    selector = keccak(text="MeterRegistryUnknownMeter(bytes32)")[:4]
    data = "0x" + (selector + b"M".ljust(32, b"\0")).hex()
    error = ContractCustomError("revert", data={"result": data, "message": "revert"})
    assert offline_chain().decode_revert(error).error_name == "MeterRegistryUnknownMeter"


def test_unknown_selector_is_an_unknown_revert_keeping_the_raw_data() -> None:
    revert = offline_chain().decode_revert(ContractCustomError("x", data="0xdeadbeef"))
    assert revert.error_name == "UnknownRevert"
    assert revert.raw == "0xdeadbeef"


def test_bytes_arguments_print_as_hex() -> None:
    assert str(ContractRevert(error_name="E", args=(b"\x01\x02", 5))) == "E(0x0102, 5)"


def test_error_names_become_snake_case_codes() -> None:
    assert snake_case("MeterRegistryUnknownMeter") == "meter_registry_unknown_meter"


# --- every error carries its code and HTTP status -----------------------------------------------

# Errors that are the server's own fault or need an operator: 500 on purpose. Every other error
# is the client's (bad input, missing thing, state) or an outage (503), never a bare 500.
INTERNAL_FAULTS = {
    LedgerError,
    ConfigError,
    MerkleError,
    AnchorStuck,
    StoreError,
    SimulationError,
    MarketDayError,
}

# The statuses clients were given before the rules read them from the names (README, docs/*.md):
# the rules must keep every one of them.
NOT_FOUND_BEFORE = {
    "MeterRegistryUnknownMeter",
    "MeterRegistryNoKeyAt",
    "MeterRegistryUnknownEpoch",
    "ReadingLedgerUnknownBatch",
    "EnergyMarketUnknownOffer",
    "EnergyMarketUnknownTrade",
}
INVALID_INPUT_BEFORE = {
    "MeterRegistryZeroOwner",
    "MeterRegistryUnsupportedAlgorithm",
    "MeterRegistryInvalidPublicKey",
    "MeterRegistryValidFromInPast",
    "MeterRegistryWeakPublicKey",
    "MeterRegistryCompromiseInFuture",
    "MeterRegistryCompromiseBeforeKey",
    "EnergyMarketZeroQuantity",
    "EnergyMarketZeroPrice",
    "EnergyMarketTradeTooSmall",
    "EnergyMarketUnalignedTime",
    "EnergyMarketInvalidExpiry",
    "EnergyMarketDeliveryTooLate",
    "SafeCastOverflowedUintDowncast",
    "EnergyMarketSignatureExpired",
    "EnergyMarketInvalidSignature",
    "EnergyMarketSameMeter",
    "ERC2612ExpiredSignature",
    "ERC2612InvalidSigner",
}

# BillRegistry's errors, new with it: the same rules give them these statuses.
BILL_REGISTRY_NOT_FOUND = {
    "BillRegistryUnknownTariff",
    "BillRegistryUnknownAssignment",
    "BillRegistryUnknownRun",
}
BILL_REGISTRY_INVALID_INPUT = {
    "BillRegistryZeroTariffHash",
    "BillRegistryValidFromInPast",
    "BillRegistryZeroCustomer",
    "BillRegistryAssignmentBeforeTariff",
    "BillRegistryZeroRoot",
    "BillRegistryZeroBillCount",
}

# ComplaintRegistry's errors, new with it: the same rules give them these statuses (out of
# order, wrong party: 409, the chain's state refuses).
COMPLAINT_REGISTRY_NOT_FOUND = {"ComplaintRegistryUnknownComplaint"}
COMPLAINT_REGISTRY_INVALID_INPUT = {
    "ComplaintRegistryInvalidSubjectKind",
    "ComplaintRegistryInvalidRating",
    "ComplaintRegistryZeroHandler",
    "ComplaintRegistrySignatureExpired",
    "ComplaintRegistryInvalidSignature",
}


def all_ledger_errors() -> list[type[LedgerError]]:
    """Every LedgerError subclass in ledger/ and api/ (each module imported first)."""
    for package in (ledger, api):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" not in module.name:  # Alembic's scripts run only inside Alembic
                importlib.import_module(module.name)
    found: list[type[LedgerError]] = []
    pending: list[type[LedgerError]] = [LedgerError]
    while pending:
        cls = pending.pop()
        # Only ledger's and api's own: the brownie scripts (and tests) subclass too, and whether
        # they are imported depends on which tests ran first.
        if cls.__module__.split(".")[0] in {"ledger", "api"}:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def abi_error_names() -> set[str]:
    return {
        entry["name"]
        for artifact in compile_contracts().values()
        for entry in artifact.abi
        if entry["type"] == "error"
    }


def test_every_ledger_error_is_drawn_in_the_tree_of_ledger_errors() -> None:
    drawn = set(re.findall(r"(?:^\s+|\+-- )(\w+)", ledger.errors.__doc__ or "", re.MULTILINE))
    missing = {cls.__name__ for cls in all_ledger_errors()} - drawn
    assert not missing, f"add to the tree in ledger/errors.py: {sorted(missing)}"


def test_every_ledger_error_has_a_code_of_its_own() -> None:
    codes = {cls: cls.code for cls in all_ledger_errors()}
    inherited = [
        c.__name__ for c, code in codes.items() if c is not LedgerError and code == "ledger_error"
    ]
    assert not inherited


def test_only_internal_faults_answer_500() -> None:
    statuses = {cls.__name__: cls.http_status for cls in all_ledger_errors()}
    allowed = {cls.__name__ for cls in INTERNAL_FAULTS}
    assert {name for name, status in statuses.items() if status == 500} == allowed


def test_every_error_status_is_an_http_error_status() -> None:
    assert all(400 <= cls.http_status <= 599 for cls in all_ledger_errors())


def test_every_custom_error_in_every_abi_gets_a_status_that_is_not_500() -> None:
    statuses = {name: revert_status(name) for name in abi_error_names()}
    assert set(statuses.values()) <= {404, 409, 422}


def test_custom_errors_keep_the_statuses_clients_were_given() -> None:
    names = abi_error_names()
    not_found = NOT_FOUND_BEFORE | BILL_REGISTRY_NOT_FOUND | COMPLAINT_REGISTRY_NOT_FOUND
    invalid_input = (
        INVALID_INPUT_BEFORE | BILL_REGISTRY_INVALID_INPUT | COMPLAINT_REGISTRY_INVALID_INPUT
    )
    assert not_found | invalid_input <= names
    assert {n for n in names if revert_status(n) == 404} == not_found
    # ECDSA's errors (a malformed permit signature) were 409 before any rule: a bad signature
    # is bad input like the permit's other signature errors.
    ecdsa = {n for n in names if n.startswith("ECDSA")}
    assert {n for n in names if revert_status(n) == 422} == invalid_input | ecdsa


def test_an_unknown_revert_is_a_conflict() -> None:
    revert = ContractRevert(error_name="UnknownRevert", raw="0xdeadbeef")
    assert (revert.code, revert.http_status) == ("unknown_revert", 409)


def test_a_revert_carries_its_error_name_as_code_and_the_status_the_name_gives() -> None:
    revert = ContractRevert(error_name="EnergyMarketUnknownTrade", args=(9,))
    assert (revert.code, revert.http_status) == ("energy_market_unknown_trade", 404)


def test_a_complaint_step_out_of_order_or_by_another_party_is_a_conflict() -> None:
    statuses = {
        revert_status(name)
        for name in ("ComplaintRegistryStepOutOfOrder", "ComplaintRegistryNotCustomer")
    }
    assert statuses == {409}
