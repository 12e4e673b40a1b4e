"""`brownie run scripts/deploy.py --network ledger-ganache`: deploy the ledger's contracts (or
check the recorded ones) on the network brownie is connected to, and record them for the gateway.

The deployment is `ledger.chain.deployment.ensure_deployed`, the code `ledger serve` and
`ledger deploy` run: the addresses are recorded in `<LEDGER_DATA_DIR>/deployments/<chain id>.json`,
a recorded deployment is re-used once the code at its addresses is this build's, and
`ledger serve` re-uses a record written here in the same way. On `ledger-ganache` the chain
brownie starts keeps its state where `make run` starts its own (see tools/ledger-ganache), so
`make run` afterwards finds these contracts. Prints chain id, whether anything was deployed now,
the addresses and the record's path.
"""

from __future__ import annotations

from typing import Any

from ledger.chain.deployment import record_path
from ledger.settings import Settings
from scripts._ledger import finish, ledger_deployment, operator_chain


def main() -> None:
    finish(deploy)


def deploy() -> dict[str, Any]:
    """Deploys or finds the ledger's contracts on brownie's network; returns what to print."""
    settings = Settings.from_env()
    chain = operator_chain(settings)
    deployment = ledger_deployment(chain, settings)
    return {
        "chain_id": deployment.chain_id,
        "deployed_now": deployment.deployed_now,
        "contracts": deployment.addresses,
        "record": str(record_path(settings.data_dir, deployment.chain_id)),
    }
