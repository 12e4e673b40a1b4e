"""`ledger audit` against a running system: a clean simulated period passes, and each way an
operator could change, hide or forge data fails the audit with the record named.

One module fixture runs a short simulated month (`ledger.sim.month.simulated_month`: two
households, one with PV, one trading day, billed) on Anvil with an in-process gateway, and while
it runs takes what an auditor is given: the month's reading bundle, the bills' verification
packages, the deployment record, a copy of the gateway's database (the operator's data that the
tamper tests change) and a clean audit through the gateway's own routes. On the same chain, after
the month, the operator's anchorer is made to misbehave twice: once it anchors a root that leaves
out a reading it accepted, once it accepts and anchors a reading whose signature is forged (the
signature check switched off). Then the gateway and the chain are stopped, and the chain alone is
started again from its saved state: every audit below runs with no gateway at all.

Each tamper test changes a copy (of the database, the bundle or the bills file), never the
shared data, and audits with one job (the workers are exercised by the clean command-line
audit).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ledger.anchoring.anchorer as anchorer_module
import ledger.readings.ingest as ingest_module
from ledger.anchoring.bundle import BundleSelection, export_bundle
from ledger.anchoring.merkle import MerkleTree
from ledger.audit.auditor import AuditOptions, run_audit
from ledger.audit.chain import ChainFacts
from ledger.audit.report import AuditReport
from ledger.audit.watch import Watcher
from ledger.billing.evidence import bill_evidence
from ledger.chain.client import LocalChain, free_port
from ledger.chain.deployment import record_path
from ledger.meters.keys import KeyAlgorithm, generate_key
from ledger.meters.registry import meter_id_bytes
from ledger.readings.native import decode, sign_canonical
from ledger.sim.month import simulated_month
from ledger.store.database import Store
from tests.fixtures.billing import MeterUnderTest, ingest, sign_readings
from tests.fixtures.chain import dev_account

pytestmark = [pytest.mark.chain, pytest.mark.slow]

LEDGER_BIN = Path(sys.executable).parent / "ledger"
BUYER = "HOME-000002"
TAMPERED_SEQ = 1_000  # a reading in the middle of the month, no trade's boundary
EXTRA_METER = "AUDIT-0001"


@dataclass
class Audited:
    """What the auditor holds, and what the operator did (see the module docstring)."""

    rpc_url: str
    deployment: Path
    period: tuple[int, int]
    bundle: Path
    bills: Path
    database: Path
    gateway_report: AuditReport
    omitting_batch: int
    omitted_seq: int
    forging_batch: int
    forged_seq: int
    tmp: Path
    facts: ChainFacts

    def audit(self, **changes: Any) -> AuditReport:
        options: dict[str, Any] = {
            "rpc_url": self.rpc_url,
            "deployment": self.deployment,
            "bundle": self.bundle,
            "bills": self.bills,
            "from_ts": self.period[0],
            "to_ts": self.period[1],
            "jobs": 1,
        }
        options.update(changes)
        # The chain's facts are read once for the module: the chain does not change under it.
        return run_audit(AuditOptions(**options), facts=self.facts)


def _misbehave(node: Any, chain_id: int, period_end: int) -> tuple[int, int, int, int]:
    """The anchorer's two misdeeds after the month, each in its own batch; returns (omitting
    batch, omitted seq, forging batch, forged seq)."""
    node.anchorer.stop()  # from here on, batches are made only by the calls below
    meter = MeterUnderTest(EXTRA_METER, generate_key(KeyAlgorithm.P256), dev_account(3).address)
    node.meters.register(meter.meter_id, meter.owner, meter.key.public_key(), period_end)
    ingest(node, meter, sign_readings(chain_id, meter, 0, 4, period_end + 900))
    with pytest.MonkeyPatch.context() as patch:
        # A root over the batch's leaves but the third: the database keeps all four.
        patch.setattr(
            anchorer_module, "MerkleTree", lambda leaves: MerkleTree([*leaves[:2], *leaves[3:]])
        )
        node.anchorer.run_once()
    omitting = node.store.last_batch_id()
    omitted = _seq_at(node.store, omitting, 2)
    signed = sign_readings(chain_id, meter, 0, 3)
    stranger = generate_key(KeyAlgorithm.P256)
    reading, _ = signed[1]
    signed[1] = (reading, sign_canonical(stranger, reading.encode()))
    with pytest.MonkeyPatch.context() as patch:
        # Accepted unchecked, its (raw r || s) signature anchored as given: the fast path for
        # sound native readings is switched off too, so the general path's check is the one.
        patch.setattr(ingest_module, "verify_signature", lambda *args: args[3])
        patch.setattr(ingest_module.Ingestor, "_sound_native", lambda *args: None)
        ingest(node, meter, signed)
    node.anchorer.run_once()
    return omitting, omitted, node.store.last_batch_id(), reading.seq


def _seq_at(store: Store, batch_id: int, leaf_index: int) -> int:
    with store.read() as db:
        (seq,) = db.execute(
            "SELECT seq FROM readings WHERE batch_id = ? AND leaf_index = ?", (batch_id, leaf_index)
        ).fetchone()
    return int.from_bytes(bytes(seq), "big")


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    tmp = tmp_path_factory.mktemp("audit")
    data = tmp / "data"
    with simulated_month(
        data, month="2026-02", households=2, pv=1, trading_days=1, keep_chain=True
    ) as (summary, url, node):
        period = (int(summary["period_start"]), int(summary["period_end"]))
        bundle = tmp / "month.jsonl"
        export_bundle(node.store, BundleSelection.time_range(*period), bundle)
        bills = tmp / "bills.jsonl"
        with bills.open("w") as out:
            for row in summary["bills"]:
                package = bill_evidence(
                    node.store, node.deployment, bytes.fromhex(row["bill_hash"][2:])
                )
                out.write(json.dumps(package) + "\n")
        database = tmp / "operator.db"
        with sqlite3.connect(data / "ledger.db") as live, sqlite3.connect(database) as copy:
            live.backup(copy)
        deployment = record_path(data, node.chain.chain_id)
        gateway_report = run_audit(
            AuditOptions(
                rpc_url=node.chain.rpc_url,
                deployment=deployment,
                gateway=url,
                token=node.settings.operator_token,
                from_ts=period[0],
                to_ts=period[1],
                jobs=2,
            )
        )
        misdeeds = _misbehave(node, node.chain.chain_id, period[1])
    # The gateway and its chain are stopped; the chain alone comes back from its saved state.
    chain = LocalChain(
        kind="anvil",
        port=free_port(),
        db_path=data / "chain" / "anvil" / "state.json",
        log_path=tmp / "anvil-again.log",
    )
    chain.start()
    try:
        yield Audited(
            chain.rpc_url,
            deployment,
            period,
            bundle,
            bills,
            database,
            gateway_report,
            *misdeeds,
            tmp,
            ChainFacts.read(chain.rpc_url, deployment),
        )
    finally:
        chain.stop()


# --- helpers --------------------------------------------------------------------------------------


def records(report: AuditReport, code: str) -> list[dict[str, Any]]:
    return [d.record for d in report.discrepancies if d.code == code]


def tampered_database_bundle(
    audited: Audited, name: str, batches: tuple[int, int], sql: str, *params: Any
) -> Path:
    """The bundle of `batches` as the operator's database exports it after `sql` ran on a copy
    of it."""
    directory = audited.tmp / name
    directory.mkdir()
    database = directory / "ledger.db"
    shutil.copy(audited.database, database)
    with sqlite3.connect(database) as db:
        assert db.execute(sql, params).rowcount == 1
    store = Store(database)
    try:
        export_bundle(store, BundleSelection.batch_range(*batches), directory / "b.jsonl")
    finally:
        store.close()
    return directory / "b.jsonl"


def batches_around(audited: Audited, meter: str, seq: int) -> tuple[int, int]:
    """The batch of a stored reading and its neighbours (so that the reading's meter has
    readings on both sides of it in the audit)."""
    with sqlite3.connect(audited.database) as db:
        (batch_id,) = db.execute(
            "SELECT batch_id FROM readings WHERE meter_id = ? AND seq = ?",
            where_reading(meter, seq),
        ).fetchone()
    return max(1, batch_id - 1), min(audited.omitting_batch - 1, batch_id + 1)


def stored_canonical(audited: Audited, meter: str, seq: int) -> bytes:
    with sqlite3.connect(audited.database) as db:
        (canonical,) = db.execute(
            "SELECT canonical FROM readings WHERE meter_id = ? AND seq = ?",
            (meter_id_bytes(meter), seq.to_bytes(8, "big")),
        ).fetchone()
    return bytes(canonical)


def with_registers(canonical: bytes, *, import_wh: int, export_wh: int) -> bytes:
    reading = decode(canonical)
    return type(reading)(
        chain_id=reading.chain_id,
        meter_id=reading.meter_id,
        seq=reading.seq,
        timestamp=reading.timestamp,
        import_wh=import_wh,
        export_wh=export_wh,
        status=reading.status,
    ).encode()


def where_reading(meter: str, seq: int) -> tuple[bytes, bytes]:
    return meter_id_bytes(meter), seq.to_bytes(8, "big")


def scope_of(bundle: Path) -> tuple[int, int]:
    """The batch range a bundle was exported for (its header's selection)."""
    selection = json.loads(bundle.read_bytes().split(b"\n", 1)[0])["selection"]["batches"]
    return int(selection["first"]), int(selection["last"])


# --- clean ----------------------------------------------------------------------------------------


def test_the_audit_through_the_gateway_of_a_billed_month_with_a_trading_day_is_clean(
    audited: Audited,
) -> None:
    report = audited.gateway_report
    assert report.discrepancies == []
    assert report.counts["readings"] == 2 * ((audited.period[1] - audited.period[0]) // 900 + 2)
    assert report.counts["settlements"] > 0
    assert report.counts["bills"] == 2


def test_the_command_audits_the_month_clean_from_the_bundle_with_the_gateway_stopped(
    audited: Audited,
) -> None:
    out = audited.tmp / "clean.json"
    completed = subprocess.run(
        [
            str(LEDGER_BIN), "audit", "--rpc", audited.rpc_url,
            "--deployment", str(audited.deployment), "--bundle", str(audited.bundle),
            "--bills", str(audited.bills), "--from", str(audited.period[0]),
            "--to", str(audited.period[1]), "--json", str(out), "--jobs", "2",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.startswith("audit of chain 1337: CLEAN")
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["discrepancies"] == []
    assert report["checked"]["readings"] == audited.gateway_report.counts["readings"]


def test_the_command_exits_2_for_a_bundle_that_is_not_there(audited: Audited) -> None:
    completed = subprocess.run(
        [
            str(LEDGER_BIN), "audit", "--rpc", audited.rpc_url,
            "--deployment", str(audited.deployment), "--bundle", str(audited.tmp / "none"),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "error [audit_input_error]" in completed.stderr


# --- the operator's data changed ----------------------------------------------------------------


def test_a_stored_readings_value_changed_in_the_database_fails_its_signature_and_its_root(
    audited: Audited,
) -> None:
    original = decode(stored_canonical(audited, BUYER, TAMPERED_SEQ))
    changed = with_registers(
        stored_canonical(audited, BUYER, TAMPERED_SEQ),
        import_wh=original.import_wh - 100,
        export_wh=original.export_wh,
    )
    bundle = tampered_database_bundle(
        audited,
        "changed",
        batches_around(audited, BUYER, TAMPERED_SEQ),
        "UPDATE readings SET canonical = ?, import_wh = ? WHERE meter_id = ? AND seq = ?",
        changed,
        (original.import_wh - 100).to_bytes(8, "big"),
        *where_reading(BUYER, TAMPERED_SEQ),
    )

    report = audited.audit(bundle=bundle, bills=None, batches=scope_of(bundle))

    assert not report.ok
    (bad,) = records(report, "reading_signature_invalid")
    assert (bad["meter"], bad["seq"]) == (BUYER, TAMPERED_SEQ)
    assert records(report, "batch_root_mismatch") == [{"batch_id": bad["batch_id"]}]


def test_a_reading_deleted_from_the_database_is_named_by_batch_leaf_and_seq(
    audited: Audited,
) -> None:
    bundle = tampered_database_bundle(
        audited,
        "deleted",
        batches_around(audited, BUYER, TAMPERED_SEQ),
        "DELETE FROM readings WHERE meter_id = ? AND seq = ?",
        *where_reading(BUYER, TAMPERED_SEQ),
    )

    report = audited.audit(bundle=bundle, bills=None, batches=scope_of(bundle))

    assert not report.ok
    (withheld,) = records(report, "reading_withheld")
    assert set(withheld) == {"batch_id", "leaf_index"}
    (gap,) = records(report, "sequence_gap")
    assert (gap["meter"], gap["first_missing_seq"], gap["last_missing_seq"]) == (
        BUYER,
        TAMPERED_SEQ,
        TAMPERED_SEQ,
    )


def test_a_reading_re_signed_with_another_key_fails_its_signature(audited: Audited) -> None:
    canonical = stored_canonical(audited, BUYER, TAMPERED_SEQ)
    bundle = tampered_database_bundle(
        audited,
        "resigned",
        batches_around(audited, BUYER, TAMPERED_SEQ),
        "UPDATE readings SET signature = ? WHERE meter_id = ? AND seq = ?",
        sign_canonical(generate_key(KeyAlgorithm.P256), canonical),
        *where_reading(BUYER, TAMPERED_SEQ),
    )

    report = audited.audit(bundle=bundle, bills=None, batches=scope_of(bundle))

    assert not report.ok
    (bad,) = records(report, "reading_signature_invalid")
    assert (bad["meter"], bad["seq"]) == (BUYER, TAMPERED_SEQ)


def test_a_settlement_input_altered_in_the_database_names_the_trade(audited: Audited) -> None:
    first = audited.facts.settlements[0]
    pinned = audited.facts.boundaries[(first.seller_meter, first.slot_start)]
    seller = first.seller_meter.rstrip(b"\0").decode()
    changed = with_registers(
        stored_canonical(audited, seller, pinned.seq),
        import_wh=pinned.import_wh,
        export_wh=pinned.export_wh - 50,
    )
    bundle = tampered_database_bundle(
        audited,
        "settlement",
        (1, audited.omitting_batch - 1),
        "UPDATE readings SET canonical = ?, export_wh = ? WHERE meter_id = ? AND seq = ?",
        changed,
        (pinned.export_wh - 50).to_bytes(8, "big"),
        *where_reading(seller, pinned.seq),
    )

    report = audited.audit(bundle=bundle, bills=None)

    assert not report.ok
    mismatches = records(report, "settlement_evidence_mismatch")
    assert {(r["trade_id"], r["meter"], r["seq"]) for r in mismatches} == {
        (first.trade_id, seller, pinned.seq)
    }


def test_a_reading_withheld_from_the_bundle_is_named_by_batch_and_leaf(audited: Audited) -> None:
    lines = audited.bundle.read_bytes().splitlines(keepends=True)
    position = next(i for i, line in enumerate(lines) if b'"leaf_index":5,' in line)
    withheld = json.loads(lines[position])
    trailer = json.loads(lines[-1])
    trailer["readings"] -= 1  # a well-formed bundle, one reading short
    bundle = audited.tmp / "withheld.jsonl"
    bundle.write_bytes(
        b"".join(lines[:position] + lines[position + 1 : -1])
        + json.dumps(trailer, separators=(",", ":")).encode()
        + b"\n"
    )

    report = audited.audit(bundle=bundle, bills=None)

    assert not report.ok
    assert records(report, "reading_withheld") == [
        {"batch_id": withheld["batch_id"], "leaf_index": 5}
    ]


def test_a_bill_line_changed_names_the_bill(audited: Audited) -> None:
    packages = [json.loads(line) for line in audited.bills.read_text().splitlines()]
    packages[0]["bill"]["lines"][0]["amount_minor"] += 1
    bills = audited.tmp / "bills-changed.jsonl"
    bills.write_text("".join(json.dumps(p) + "\n" for p in packages))

    report = audited.audit(bills=bills)

    assert not report.ok
    named = {(d.code, d.record["bill_hash"]) for d in report.errors}
    assert ("bill_hash_mismatch", packages[0]["bill_hash"]) in named
    assert ("bill_lines_mismatch", packages[0]["bill_hash"]) in named
    assert {bill_hash for _, bill_hash in named} == {packages[0]["bill_hash"]}


# --- the operator's anchoring misbehaved ---------------------------------------------------------


def _anchoring_bundle(audited: Audited) -> Path:
    bundle = audited.tmp / f"anchoring-{audited.omitting_batch}.jsonl"
    if not bundle.exists():
        store = Store(audited.tmp / "data" / "ledger.db")
        try:
            selection = BundleSelection.batch_range(audited.omitting_batch, audited.forging_batch)
            export_bundle(store, selection, bundle)
        finally:
            store.close()
    return bundle


def test_a_root_anchored_without_an_accepted_reading_names_the_reading(audited: Audited) -> None:
    report = audited.audit(
        bundle=_anchoring_bundle(audited),
        from_ts=None,
        to_ts=None,
        batches=(audited.omitting_batch, audited.omitting_batch),
        bills=None,
    )

    assert not report.ok
    assert records(report, "batch_root_mismatch") == [{"batch_id": audited.omitting_batch}]
    (omitted,) = records(report, "reading_not_in_anchored_root")
    assert (omitted["meter"], omitted["seq"], omitted["batch_id"]) == (
        EXTRA_METER,
        audited.omitted_seq,
        audited.omitting_batch,
    )


def test_a_root_anchored_over_a_forged_reading_names_the_reading(audited: Audited) -> None:
    report = audited.audit(
        bundle=_anchoring_bundle(audited),
        from_ts=None,
        to_ts=None,
        batches=(audited.forging_batch, audited.forging_batch),
        bills=None,
    )

    assert not report.ok
    (forged,) = records(report, "reading_signature_invalid")
    assert (forged["meter"], forged["seq"], forged["batch_id"]) == (
        EXTRA_METER,
        audited.forged_seq,
        audited.forging_batch,
    )
    # The root commits to the forged signature as it was anchored: it matches the chain's.
    assert audited.forging_batch not in {
        r["batch_id"] for r in records(report, "batch_root_mismatch")
    }


def test_the_watcher_proves_the_forged_reading_on_chain_and_the_audit_then_names_its_batch(
    audited: Audited,
) -> None:
    prover = dev_account(5)  # any funded account: proving needs no role
    watcher = Watcher(
        AuditOptions(
            rpc_url=audited.rpc_url,
            deployment=audited.deployment,
            bundle=_anchoring_bundle(audited),
            jobs=1,
        ),
        prover_key="0x" + bytes(prover.key).hex(),
        first_batch=audited.forging_batch,
    )

    done = watcher.run_once()

    assert [(a.outcome, a.batch_id, a.meter, a.seq, a.reason) for a in done.proofs] == [
        ("proven", audited.forging_batch, EXTRA_METER, audited.forged_seq, "bad_signature")
    ]
    facts = ChainFacts.read(audited.rpc_url, audited.deployment)
    assert facts.proven_bad == {
        audited.forging_batch: (meter_id_bytes(EXTRA_METER), audited.forged_seq)
    }
    fresh = run_audit(
        AuditOptions(
            rpc_url=audited.rpc_url,
            deployment=audited.deployment,
            bundle=_anchoring_bundle(audited),
            batches=(audited.forging_batch, audited.forging_batch),
            jobs=1,
        ),
        facts=facts,
    )
    (proven,) = records(fresh, "batch_proven_bad")
    assert (proven["batch_id"], proven["meter"], proven["seq"]) == (
        audited.forging_batch,
        EXTRA_METER,
        audited.forged_seq,
    )
    assert watcher.run_once().report is None  # nothing anchored since: nothing audited
