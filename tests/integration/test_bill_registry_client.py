"""BillRegistryClient against a real Anvil: writes through the operator's transaction sender,
reads back as dataclasses, refusals that mine nothing and map to stable codes.

One Anvil for the module; every test gets a fresh deployment (the module's `anvil` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from eth_utils import keccak

from ledger.anchoring.merkle import MerkleTree
from ledger.billing.document import bill_leaf
from ledger.billing.registry import (
    BillRegistryClient,
    BillRegistryInputError,
    BillRun,
    TariffAssignment,
    TariffRecord,
)
from ledger.chain.client import Chain, LocalChain, connect
from ledger.chain.deployment import Deployment, ensure_deployed
from ledger.errors import ContractRevert, LedgerError
from ledger.settings import DEV_OPERATOR_KEY
from tests.fixtures.chain import dev_account, latest_time

TARIFF = keccak(text="household tariff v1")
OTHER_TARIFF = keccak(text="household tariff v2")
CUSTOMER = dev_account(1).address
AHEAD = 1_000  # seconds ahead of the chain's clock: a start that is never "in the past"
PERIOD = (1_698_796_800, 1_701_388_800)  # November 2023 (UTC), long over
BILL_HASHES = [keccak(text=f"bill {i}") for i in range(3)]


@pytest.fixture
def chain(anvil: LocalChain) -> Chain:
    return connect(anvil.rpc_url, DEV_OPERATOR_KEY)


@pytest.fixture
def deployment(chain: Chain, tmp_path: Path) -> Deployment:
    return ensure_deployed(chain, tmp_path)


@pytest.fixture
def client(chain: Chain, deployment: Deployment) -> BillRegistryClient:
    return BillRegistryClient(chain, deployment)


def anchor_reading_batches(chain: Chain, deployment: Deployment, count: int) -> None:
    ledger = deployment.reading_ledger
    for batch_id in range(1, count + 1):
        root = keccak(batch_id.to_bytes(32, "big"))
        chain.transact(ledger.functions.anchor(batch_id, root, 96, *PERIOD))


def operator_nonce(chain: Chain) -> int:
    return chain.w3.eth.get_transaction_count(chain.operator.address, "pending")


def test_a_published_tariff_reads_back_with_its_publication_time(
    chain: Chain, client: BillRegistryClient
) -> None:
    valid_from = latest_time(chain) + AHEAD

    sent = client.publish_tariff(TARIFF, valid_from)

    published_at = int(chain.w3.eth.get_block(sent.block_number)["timestamp"])
    assert client.tariff(TARIFF) == TariffRecord(TARIFF, valid_from, published_at)


def test_a_write_returns_its_mined_transaction_and_block(
    chain: Chain, client: BillRegistryClient
) -> None:
    sent = client.publish_tariff(TARIFF, latest_time(chain) + AHEAD)

    receipt = chain.w3.eth.get_transaction_receipt(sent.tx_hash)  # type: ignore[arg-type]
    assert (receipt["status"], receipt["blockNumber"]) == (1, sent.block_number)


def test_an_unknown_tariff_reads_as_none(client: BillRegistryClient) -> None:
    assert client.tariff(TARIFF) is None


def test_assignments_read_back_in_order_and_decide_the_tariff_at_a_time(
    chain: Chain, client: BillRegistryClient
) -> None:
    first = latest_time(chain) + AHEAD
    client.publish_tariff(TARIFF, first)
    client.publish_tariff(OTHER_TARIFF, first)
    second = first + 86_400

    client.assign_tariff(CUSTOMER, TARIFF, first)
    client.assign_tariff(CUSTOMER.lower(), OTHER_TARIFF, second)  # any spelling of the address

    assert client.assignments(CUSTOMER) == (
        TariffAssignment(TARIFF, first),
        TariffAssignment(OTHER_TARIFF, second),
    )
    assert client.tariff_at(CUSTOMER, first - 1) is None
    assert client.tariff_at(CUSTOMER, first) == TARIFF
    assert client.tariff_at(CUSTOMER, second - 1) == TARIFF
    assert client.tariff_at(CUSTOMER, second) == OTHER_TARIFF


def test_a_customer_without_assignments_has_none_and_no_tariff(
    client: BillRegistryClient,
) -> None:
    assert client.assignments(CUSTOMER) == ()
    assert client.tariff_at(CUSTOMER, 2**64 - 1) is None


def test_an_anchored_run_reads_back_and_each_of_its_bills_verifies(
    chain: Chain, deployment: Deployment, client: BillRegistryClient
) -> None:
    anchor_reading_batches(chain, deployment, 2)
    tree = MerkleTree([bill_leaf(h) for h in BILL_HASHES])

    sent = client.anchor_bills(
        run_id=1,
        root=tree.root,
        bill_count=len(BILL_HASHES),
        period_start=PERIOD[0],
        period_end=PERIOD[1],
        first_reading_batch=1,
        last_reading_batch=2,
    )

    anchored_at = int(chain.w3.eth.get_block(sent.block_number)["timestamp"])
    assert client.run_count() == 1
    assert client.run(1) == BillRun(1, tree.root, 3, *PERIOD, 1, 2, anchored_at)
    assert all(client.verify_bill(1, h, tree.proof(i)) for i, h in enumerate(BILL_HASHES))
    assert not client.verify_bill(1, keccak(text="not issued"), tree.proof(0))
    assert not client.verify_bill(2, BILL_HASHES[0], tree.proof(0))


def test_a_refused_write_mines_nothing(chain: Chain, client: BillRegistryClient) -> None:
    nonce, block = operator_nonce(chain), chain.w3.eth.block_number

    with pytest.raises(ContractRevert):
        client.assign_tariff(CUSTOMER, TARIFF, latest_time(chain) + AHEAD)

    assert operator_nonce(chain) == nonce
    assert chain.w3.eth.block_number == block


def test_a_tariff_published_twice_is_a_conflict_with_its_code(
    chain: Chain, client: BillRegistryClient
) -> None:
    client.publish_tariff(TARIFF, latest_time(chain) + AHEAD)

    with pytest.raises(LedgerError) as caught:
        client.publish_tariff(TARIFF, latest_time(chain) + AHEAD)

    assert (caught.value.code, caught.value.http_status) == (
        "bill_registry_tariff_already_published",
        409,
    )


def test_assigning_an_unpublished_tariff_is_not_found_with_its_code(
    chain: Chain, client: BillRegistryClient
) -> None:
    with pytest.raises(LedgerError) as caught:
        client.assign_tariff(CUSTOMER, TARIFF, latest_time(chain) + AHEAD)

    assert (caught.value.code, caught.value.http_status) == ("bill_registry_unknown_tariff", 404)


def test_a_start_in_the_past_is_invalid_input_with_its_code(
    chain: Chain, client: BillRegistryClient
) -> None:
    with pytest.raises(LedgerError) as caught:
        client.publish_tariff(TARIFF, latest_time(chain) - 1)

    assert (caught.value.code, caught.value.http_status) == (
        "bill_registry_valid_from_in_past",
        422,
    )


def test_a_run_not_anchored_is_not_found_with_its_code(client: BillRegistryClient) -> None:
    with pytest.raises(LedgerError) as caught:
        client.run(1)

    assert (caught.value.code, caught.value.http_status) == ("bill_registry_unknown_run", 404)


def test_a_skipped_run_id_is_a_conflict_with_its_code(
    chain: Chain, deployment: Deployment, client: BillRegistryClient
) -> None:
    anchor_reading_batches(chain, deployment, 1)

    with pytest.raises(ContractRevert) as caught:
        client.anchor_bills(
            run_id=2,
            root=BILL_HASHES[0],
            bill_count=1,
            period_start=PERIOD[0],
            period_end=PERIOD[1],
            first_reading_batch=1,
            last_reading_batch=1,
        )

    assert (caught.value.code, caught.value.args_decoded) == (
        "bill_registry_unexpected_run_id",
        (2, 1),
    )


@pytest.mark.parametrize(
    "write",
    [
        lambda c: c.publish_tariff(b"\x01" * 31, 0),
        lambda c: c.publish_tariff(TARIFF, -1),
        lambda c: c.publish_tariff(TARIFF, 2**64),
        lambda c: c.publish_tariff(TARIFF, True),
        lambda c: c.assign_tariff("not an address", TARIFF, 0),
        lambda c: c.anchor_bills(
            run_id=1,
            root=TARIFF,
            bill_count=2**32,
            period_start=0,
            period_end=1,
            first_reading_batch=1,
            last_reading_batch=1,
        ),
    ],
    ids=["short hash", "negative time", "time past uint64", "bool", "bad customer", "bill count"],
)
def test_input_that_cannot_be_sent_is_refused_before_any_call(
    chain: Chain, client: BillRegistryClient, write: Callable[[BillRegistryClient], object]
) -> None:
    nonce = operator_nonce(chain)

    with pytest.raises(BillRegistryInputError) as caught:
        write(client)

    assert (caught.value.code, caught.value.http_status) == ("invalid_bill_registry_input", 422)
    assert operator_nonce(chain) == nonce


def test_a_malformed_proof_verifies_nothing(client: BillRegistryClient) -> None:
    assert not client.verify_bill(1, BILL_HASHES[0], [b"\x00" * 31])
    assert not client.verify_bill(1, b"short", [])
    assert not client.verify_bill(-1, BILL_HASHES[0], [])
