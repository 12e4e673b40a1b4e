"""Revert decoding and the HTTP error codes, without a chain."""

from __future__ import annotations

from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError

from api.errors import _snake
from ledger.chain.client import Chain
from ledger.chain.compiler import compile_contracts
from ledger.errors import ContractRevert


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
    assert _snake("MeterRegistryUnknownMeter") == "meter_registry_unknown_meter"
