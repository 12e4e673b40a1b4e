"""What the brownie scripts in scripts/ share: the ledger's operator on the network brownie is
connected to, the ledger's deployment there, and how a script ends.

The scripts send through the ledger's own code (`ledger.chain`, `ledger.meters`), not through
brownie's accounts: a transaction from a script is signed, nonce-ordered and decoded exactly as
one from `ledger serve`, with the same operator key and under the same sender lock as every
gateway on the same database (so a script may run while `make run` is up), and a revert is
reported by its custom error's name.

Which chain: brownie's (`--network`); LEDGER_RPC_URL is not read. The operator key is
LEDGER_OPERATOR_KEY or, on a development network (a chain brownie starts, or finds running at
its host and port), the development mnemonic's first key, which such chains are started with.
The deployment is the one recorded under LEDGER_DATA_DIR for the chain's id, deployed and
recorded first when there is none, by `ledger.chain.deployment` exactly as `ledger deploy` does.

A chain brownie starts itself it also stops at the end of the script (SIGKILL): only a chain that
keeps its state where `ledger serve` starts its own keeps what a script did. `operator_chain`
refuses any other (brownie's own `development` network, or a `ledger-ganache` registered with an
older command), before anything is sent: see `check_chain_is_kept`.

brownie is imported inside the functions that need it, so the rest can be imported (and tested)
without brownie taking over the process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledger.chain.client import Chain, connect
from ledger.chain.deployment import Deployment, MarketParameters, ensure_deployed
from ledger.chain.txsender import sender_lock_for
from ledger.errors import ConfigError, LedgerError
from ledger.settings import DEV_OPERATOR_KEY, Settings

DB_PATH_FLAG = "--database.dbPath"


def finish(body: Callable[[], Any]) -> None:
    """Runs a script's body and prints its result as JSON.

    A LedgerError ends the script as it ends the `ledger` command: `error [code]: message` on
    stderr and exit status 1, instead of brownie's traceback.
    """
    try:
        result = body()
    except LedgerError as error:
        print(f"error [{error.code}]: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(result, indent=2))


def operator_chain(settings: Settings) -> Chain:
    """The chain brownie is connected to, with the ledger's operator account ready to send.

    Raises:
        ConfigError: no operator key for a network that is not a development one, a chain
            brownie started that `ledger serve` would not find again (`check_chain_is_kept`),
            or a provider that is not HTTP.
    """
    from brownie import network
    from brownie.network.main import show_active

    endpoint = getattr(network.web3.provider, "endpoint_uri", None)
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"brownie's network {show_active()} is reached at {endpoint!r}: the ledger "
            "sends over HTTP(S) JSON-RPC only"
        )
    development = network.rpc.is_active()
    if settings.operator_key is None and not development:
        raise ConfigError(
            f"set LEDGER_OPERATOR_KEY to send on {show_active()}: the development key is "
            "public and only signs on a development network"
        )
    key = settings.operator_key if settings.operator_key is not None else DEV_OPERATOR_KEY
    chain = connect(endpoint, key, sender_lock=sender_lock_for(settings))
    if network.rpc.is_child():
        process = network.rpc.process
        check_chain_is_kept(settings, process.cmdline(), Path(process.cwd()), chain.chain_id)
    return chain


def check_chain_is_kept(
    settings: Settings, command: Sequence[str], cwd: Path, chain_id: int
) -> None:
    """Refuses a chain brownie started (`command`, run in `cwd`) unless `ledger serve` with the
    same settings would start the same chain again: Ganache, over the database in
    `<LEDGER_DATA_DIR>/chain/ganache`, with chain id LEDGER_CHAIN_ID.

    Otherwise the deployment record written now would name contracts that vanish when brownie
    stops its chain, and `make run` would deploy anew.

    Raises:
        ConfigError: the chain would not be found again, and why.
    """
    reregister = (
        "use --network ledger-ganache (`make bootstrap` registers it; run it again if "
        "ledger-ganache was registered by an older checkout)"
    )
    args = list(command)
    if DB_PATH_FLAG not in args or args.index(DB_PATH_FLAG) + 1 >= len(args):
        raise ConfigError(
            f"brownie started a chain that keeps no state (`{' '.join(args)}`): what this "
            f"script does would vanish when brownie stops it; {reregister}"
        )
    if settings.chain != "ganache":
        raise ConfigError(
            f"LEDGER_CHAIN is {settings.chain}: `make run` would start that, not the Ganache "
            "brownie started; unset LEDGER_CHAIN, or deploy with `ledger deploy`"
        )
    kept_in = (cwd / args[args.index(DB_PATH_FLAG) + 1]).resolve()
    # Where ledger.node.LedgerNode.start keeps a managed chain.
    served_from = (settings.data_dir / "chain" / settings.chain).resolve()
    if kept_in != served_from:
        raise ConfigError(
            f"brownie's chain keeps its state in {kept_in}, but `ledger serve` starts its chain "
            f"from {served_from} (LEDGER_DATA_DIR): run brownie from the project root with the "
            f"same LEDGER_DATA_DIR as `make run`; {reregister}"
        )
    if chain_id != settings.chain_id:
        raise ConfigError(
            f"brownie's chain has chain id {chain_id} (the cmd_settings of brownie-config.yaml) "
            f"but `ledger serve` starts chain id {settings.chain_id} (LEDGER_CHAIN_ID): make "
            "them the same"
        )


def ledger_deployment(chain: Chain, settings: Settings) -> Deployment:
    """The ledger's contracts on `chain`: the recorded ones once their code is checked, or new
    ones deployed and recorded, exactly as `ledger serve` and `ledger deploy` do.

    Raises:
        DeploymentError: the recorded addresses hold other code than this build's.
    """
    return ensure_deployed(
        chain,
        settings.data_dir,
        market=MarketParameters(
            slot_s=settings.market_slot_s,
            boundary_window_s=settings.market_boundary_window_s,
            settlement_window_s=settings.market_settlement_window_s,
            min_trade_value=settings.market_min_trade_value,
            challenge_period_s=settings.challenge_period_s,
        ),
    )
