"""The brownie scripts as an operator runs them: `brownie run scripts/<name>.py main ... --network
<net>` in a subprocess, and `ledger serve` afterwards on what they left.

The module follows the README's path once (brownie starts slowly, so each script runs once):
1. `deploy.py` on a network registered as `make bootstrap` registers `ledger-ganache` (command
   tools/ledger-ganache, the cmd_settings of brownie-config.yaml) on a free port: brownie starts
   Ganache itself and kills it at the end, as on a fresh clone;
2. `register_meters.py` the same way, so brownie starts Ganache again over the same database;
3. `ledger serve` on the same data directory (what `make run` runs), which must re-use the
   deployment and see the meters;
4. `mint.py` and a bad CSV on a network pointing at the gateway's running chain, to which brownie
   attaches (`brownie run` while `make run` is up).

Brownie reads its network list from ~/.brownie: HOME is a temporary directory here, so the user's
own list is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from eth_account.signers.local import LocalAccount

from ledger.chain.client import Chain, connect, free_port
from ledger.chain.compiler import DEPLOYABLE_CONTRACTS, PROJECT_ROOT, compile_contracts
from ledger.chain.deployment import ensure_deployed, record_path
from ledger.meters.keys import KeyAlgorithm, encode_public_key, generate_key
from ledger.meters.registry import MeterAdmin, meter_id_bytes
from ledger.settings import DEV_OPERATOR_KEY
from scripts.mint import DEMO_UNITS
from tests.fixtures.chain import dev_account
from tests.fixtures.gateway import Gateway, ledger_env, start_gateway

# One xdist group with test_toolchain's `brownie compile`: both write brownie's build/ in the
# project.
pytestmark = [pytest.mark.chain, pytest.mark.slow, pytest.mark.xdist_group("brownie-build")]

BROWNIE = Path(sys.executable).parent / "brownie"
LEDGER_GANACHE = PROJECT_ROOT / "tools" / "ledger-ganache"
CHAIN_ID = 1337
# The first brownie run of a checkout compiles contracts/ (solc-js, a minute or more); later
# runs find brownie's build/ up to date.
BROWNIE_TIMEOUT_S = 600


@dataclass(frozen=True)
class Brownie:
    """brownie with its own network list, run from the project root as the README says."""

    env: dict[str, str]

    def add_network(self, network_id: str, host: str, cmd_settings: dict[str, Any]) -> None:
        settings = [f"{key}={value}" for key, value in cmd_settings.items()]
        subprocess.run(
            [str(BROWNIE), "networks", "add", "Development", network_id, f"host={host}",
             f"cmd={LEDGER_GANACHE}", *settings],
            cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip

    def run(self, script: str, *args: str, network: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BROWNIE), "run", f"scripts/{script}", "main", *args, "--network", network],
            cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True,
            timeout=BROWNIE_TIMEOUT_S,
        )  # fmt: skip


def ledger_ganache_cmd_settings() -> dict[str, Any]:
    """The cmd_settings brownie-config.yaml gives the `ledger-ganache` network."""
    config = yaml.safe_load((PROJECT_ROOT / "brownie-config.yaml").read_text())
    settings: dict[str, Any] = config["networks"]["ledger-ganache"]["cmd_settings"]
    return settings


def succeeded(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result


def printed_json(stdout: str) -> Any:
    """The JSON a script printed, among brownie's own lines (it is indented, so it starts with a
    line "{" and ends with a line "}")."""
    lines = stdout.splitlines()
    start = lines.index("{")
    return json.loads("\n".join(lines[start : lines.index("}", start) + 1]))


@dataclass(frozen=True)
class Operator:
    """What the module's brownie runs and gateway share."""

    brownie: Brownie
    data_dir: Path
    csv: Path
    meters: dict[str, tuple[LocalAccount, KeyAlgorithm, bytes]]


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Operator:
    """Brownie in a HOME of its own, a data directory, and a CSV of three meters."""
    root = tmp_path_factory.mktemp("brownie")
    home = root / "home"
    home.mkdir()
    data_dir = root / "data"
    env = ledger_env(data_dir, "ganache", free_port())
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join(
            [str(PROJECT_ROOT / "node_modules" / ".bin"), str(BROWNIE.parent), env["PATH"]]
        ),
        SOLCX_BINARY_PATH=str(PROJECT_ROOT / "tools" / "solcx"),
    )
    alice, bob = dev_account(1), dev_account(2)
    meters = {
        "BRW-P256-1": (alice, KeyAlgorithm.P256, 1_735_689_600),
        "BRW-ED-2": (alice, KeyAlgorithm.ED25519, 1_735_689_600),
        "BRW-K1-3": (bob, KeyAlgorithm.SECP256K1, 1_700_000_000),
    }
    lines = ["meter_id,owner,algorithm,public_key,valid_from"]
    keys: dict[str, tuple[LocalAccount, KeyAlgorithm, bytes]] = {}
    for meter_id, (owner, algorithm, valid_from) in meters.items():
        key = encode_public_key(generate_key(algorithm).public_key())
        keys[meter_id] = (owner, algorithm, key)
        # ISO 8601 for one row, Unix seconds for the others: both forms are read.
        start = "2025-01-01T00:00:00Z" if meter_id == "BRW-P256-1" else str(valid_from)
        lines.append(f"{meter_id},{owner.address},{algorithm.label},0x{key.hex()},{start}")
    csv = root / "meters.csv"
    csv.write_text("\n".join(lines) + "\n")
    return Operator(Brownie(env), data_dir, csv, keys)


@pytest.fixture(scope="module")
def deployed(operator: Operator) -> dict[str, Any]:
    """`deploy.py` then `register_meters.py`, each on a Ganache brownie starts and kills; returns
    the deployment record."""
    settings = {**ledger_ganache_cmd_settings(), "port": free_port()}
    operator.brownie.add_network("ledger-ganache-test", "http://127.0.0.1", settings)
    succeeded(operator.brownie.run("deploy.py", network="ledger-ganache-test"))
    record: dict[str, Any] = json.loads(record_path(operator.data_dir, CHAIN_ID).read_text())
    succeeded(
        operator.brownie.run("register_meters.py", str(operator.csv), network="ledger-ganache-test")
    )
    return record


@pytest.fixture(scope="module")
def gateway(operator: Operator, deployed: dict[str, Any]) -> Iterator[Gateway]:
    """`ledger serve` (what `make run` runs) on the data directory the brownie runs left."""
    running = start_gateway(operator.brownie.env, operator.data_dir.parent / "gateway.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def served_chain(gateway: Gateway) -> Chain:
    """The gateway's chain, for reading what the scripts did."""
    return connect(f"http://127.0.0.1:{gateway.env['LEDGER_CHAIN_PORT']}", DEV_OPERATOR_KEY)


@pytest.fixture(scope="module")
def attached(operator: Operator, gateway: Gateway) -> str:
    """A development network whose host is the gateway's running chain: brownie attaches."""
    port = int(gateway.env["LEDGER_CHAIN_PORT"])
    operator.brownie.add_network(
        "ledger-attach-test", f"http://127.0.0.1:{port}", {"port": port, "chain_id": CHAIN_ID}
    )
    return "ledger-attach-test"


def test_deploy_records_every_contract_for_the_chain_brownie_started(
    operator: Operator, deployed: dict[str, Any]
) -> None:
    assert deployed["chainId"] == CHAIN_ID
    assert deployed["admin"] == dev_account(0).address
    assert set(deployed["contracts"]) == set(DEPLOYABLE_CONTRACTS)


def test_deployed_code_is_this_build(deployed: dict[str, Any], served_chain: Chain) -> None:
    artifacts = compile_contracts()
    for name, address in deployed["contracts"].items():
        code = bytes(served_chain.w3.eth.get_code(address))
        assert artifacts[name].runtime_code_matches(code), name


def test_ledger_serve_reuses_the_deployment_and_chain_the_scripts_left(
    operator: Operator, deployed: dict[str, Any], gateway: Gateway
) -> None:
    health = httpx.get(f"{gateway.base_url}/healthz", timeout=10).json()
    meter = httpx.get(f"{gateway.base_url}/v1/meters/BRW-K1-3", timeout=10)

    assert health["contracts"] == deployed["contracts"]
    assert json.loads(record_path(operator.data_dir, CHAIN_ID).read_text()) == deployed
    # Only the chain brownie's runs left holds the meter register_meters.py registered.
    assert meter.status_code == 200
    assert meter.json()["owner"] == dev_account(2).address


def test_register_meters_registers_each_row_with_its_owner_key_and_start(
    operator: Operator, deployed: dict[str, Any], served_chain: Chain
) -> None:
    admin = MeterAdmin(served_chain, ensure_deployed(served_chain, operator.data_dir))
    starts = {"BRW-P256-1": 1_735_689_600, "BRW-ED-2": 1_735_689_600, "BRW-K1-3": 1_700_000_000}
    for meter_id, (owner, algorithm, key) in operator.meters.items():
        view = admin.show(meter_id)
        assert view.owner == owner.address, meter_id
        assert [(e.algorithm, e.public_key, e.valid_from) for e in view.epochs] == [
            (algorithm, key, starts[meter_id])
        ], meter_id


def test_register_meters_run_again_skips_the_meters_it_registered(
    operator: Operator, deployed: dict[str, Any], served_chain: Chain, attached: str
) -> None:
    nonce = served_chain.w3.eth.get_transaction_count(dev_account(0).address)

    result = succeeded(
        operator.brownie.run("register_meters.py", str(operator.csv), network=attached)
    )

    printed = printed_json(result.stdout)
    assert printed["registered"] == []
    assert printed["already_registered"] == list(operator.meters)
    assert served_chain.w3.eth.get_transaction_count(dev_account(0).address) == nonce


def test_mint_gives_each_named_account_its_units(
    operator: Operator, deployed: dict[str, Any], served_chain: Chain, attached: str
) -> None:
    token = served_chain.w3.eth.contract(
        address=deployed["contracts"]["SettlementToken"],
        abi=compile_contracts()["SettlementToken"].abi,
    )
    alice, bob = dev_account(1).address, dev_account(2).address
    before = [token.functions.balanceOf(a).call() for a in (alice, bob)]

    succeeded(operator.brownie.run("mint.py", f"{alice}=2500000", f"{bob}=1", network=attached))

    after = [token.functions.balanceOf(a).call() for a in (alice, bob)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2_500_000, 1]


def test_mint_without_arguments_gives_every_account_but_the_operators_the_demo_units(
    operator: Operator, deployed: dict[str, Any], served_chain: Chain, attached: str
) -> None:
    token = served_chain.w3.eth.contract(
        address=deployed["contracts"]["SettlementToken"],
        abi=compile_contracts()["SettlementToken"].abi,
    )
    accounts = [dev_account(i).address for i in range(10)]
    before = [token.functions.balanceOf(a).call() for a in accounts]

    succeeded(operator.brownie.run("mint.py", network=attached))

    after = [token.functions.balanceOf(a).call() for a in accounts]
    assert [a - b for a, b in zip(after, before, strict=True)] == [0] + [DEMO_UNITS] * 9


def test_a_bad_csv_row_is_named_and_nothing_is_sent(
    operator: Operator, deployed: dict[str, Any], served_chain: Chain, attached: str
) -> None:
    good = encode_public_key(generate_key(KeyAlgorithm.ED25519).public_key()).hex()
    bad_csv = operator.csv.with_name("bad.csv")
    bad_csv.write_text(
        "meter_id,owner,algorithm,public_key,valid_from\n"
        f"BRW-GOOD-9,{dev_account(1).address},ed25519,0x{good},\n"
        f"BRW-BAD-10,not-an-address,ed25519,0x{good},\n"
    )
    nonce = served_chain.w3.eth.get_transaction_count(dev_account(0).address)

    result = operator.brownie.run("register_meters.py", str(bad_csv), network=attached)

    assert result.returncode == 1
    assert "error [invalid_meter_csv]" in result.stderr
    assert "line 3: owner 'not-an-address' is not an account address" in result.stderr
    assert served_chain.w3.eth.get_transaction_count(dev_account(0).address) == nonce
    registry = served_chain.w3.eth.contract(
        address=deployed["contracts"]["MeterRegistry"],
        abi=compile_contracts()["MeterRegistry"].abi,
    )
    assert not registry.functions.isRegistered(meter_id_bytes("BRW-GOOD-9")).call()
