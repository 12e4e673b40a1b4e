"""`brownie run scripts/mint.py main [ADDRESS=AMOUNT ...] --network ledger-ganache`: mint
settlement units for a demo.

Each argument mints AMOUNT minor units of the SettlementToken (6 decimals: 1000000 is 1.00) to
ADDRESS, sent by the ledger's operator (who holds the token's minter role) through the ledger's
own transaction code, as `ledger market mint` does. Without arguments, on a development network,
every account of the chain but the operator's gets `DEMO_UNITS` (1,000.00): the prosumers and
consumers of a demo. Every argument is checked before anything is sent; a bad one stops the script
(`error [invalid_mint]: ...`, naming it) with nothing minted. Prints each account's balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from ledger.errors import LedgerError
from ledger.settings import Settings
from scripts._ledger import finish, ledger_deployment, operator_chain

DEMO_UNITS = 1_000_000_000
"""What each account gets without arguments: 1,000.00 in minor units (6 decimals)."""

UINT256_MAX = 2**256 - 1


class MintArgumentError(LedgerError):
    """An argument of mint.py that is not `ADDRESS=AMOUNT`."""

    code = "invalid_mint"
    http_status = 422


@dataclass(frozen=True)
class Grant:
    """Settlement units to mint to one account."""

    address: str
    amount: int


def main(*grants: str) -> None:
    finish(lambda: mint(list(grants)))


def mint(arguments: list[str]) -> dict[str, Any]:
    """Mints the grants (or the demo grants) on brownie's network; returns what to print.

    Raises:
        MintArgumentError: a bad argument, or none given on a network that is not a development
            one (nothing is sent).
        ContractRevert: the token refused a mint (e.g. the operator lacks the minter role).
    """
    from brownie import network

    grants = parse_grants(arguments)
    settings = Settings.from_env()
    chain = operator_chain(settings)
    if not grants:
        if not network.rpc.is_active():
            raise MintArgumentError("name the accounts: ADDRESS=AMOUNT (minor units) ...")
        grants = [
            Grant(to_checksum_address(account.address), DEMO_UNITS)
            for account in network.accounts
            if account.address.lower() != chain.operator.address.lower()
        ]
    token = ledger_deployment(chain, settings).settlement_token
    for grant in grants:
        chain.transact(token.functions.mint(grant.address, grant.amount))
    return {
        "chain_id": chain.chain_id,
        "token": token.address,
        "balances": {
            grant.address: chain.call(token.functions.balanceOf(grant.address)) for grant in grants
        },
    }


def parse_grants(arguments: list[str]) -> list[Grant]:
    """`ADDRESS=AMOUNT` arguments as grants.

    Raises:
        MintArgumentError: names every argument that is not an address, `=`, and a positive
            whole number of minor units.
    """
    grants: list[Grant] = []
    problems: list[str] = []
    for argument in arguments:
        address, _, amount = argument.partition("=")
        if not is_address(address):
            problems.append(f"{argument!r}: {address!r} is not an account address")
        elif not (amount.isascii() and amount.isdigit()) or not 0 < int(amount) <= UINT256_MAX:
            problems.append(
                f"{argument!r}: the amount must be a positive whole number of minor units "
                "(1000000 is 1.00)"
            )
        else:
            grants.append(Grant(to_checksum_address(address), int(amount)))
    if problems:
        raise MintArgumentError("nothing minted: " + "; ".join(problems))
    return grants
