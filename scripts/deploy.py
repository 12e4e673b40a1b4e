"""`brownie run scripts/deploy.py [--network NAME]`: deploy (or find) the ledger's contracts on the
network brownie is connected to, through the same deployment code the gateway uses.

Addresses are recorded under LEDGER_DATA_DIR (default ./data), per chain id, exactly as
`ledger deploy` records them, so the gateway finds them afterwards.
"""

from __future__ import annotations

import json

from brownie import web3

from ledger.chain.client import connect
from ledger.chain.deployment import ensure_deployed
from ledger.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    endpoint = web3.provider.endpoint_uri  # the node brownie started or connected to
    chain = connect(endpoint, settings.signing_key)
    deployment = ensure_deployed(chain, settings.data_dir)
    print(
        json.dumps(
            {
                "chain_id": chain.chain_id,
                "deployed_now": deployment.deployed_now,
                "contracts": deployment.addresses,
            },
            indent=2,
        )
    )
