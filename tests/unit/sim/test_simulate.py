"""The fleet simulator without a chain or HTTP: profiles, registers, seqs, faults, the send loop."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.cli import build_parser
from ledger.meters.keys import KeyAlgorithm, encode_public_key
from ledger.readings.native import ReadingSignatureError, decode, verify_reading_signature
from ledger.sim.fleet import (
    HOUSEHOLD_W,
    PV_PER_MILLE,
    SLOT_S,
    FaultRates,
    FleetMeter,
    MeterKind,
    Planned,
    SimulationError,
    _profile_j,
    default_start,
    generate,
    interval_energy_j,
    make_fleet,
    parse_duration,
)
from ledger.sim.harness import HttpSender
from ledger.sim.runner import Progress, Tally, load_fleet, run, save_fleet
from tests.fixtures.local_http import local_http_server

CHAIN_ID = 1337
DAY = 86400
START = 1_763_769_600  # 2025-11-22T00:00:00Z, a midnight in the past
ALL_FAULTS = FaultRates(bad_signature=0.1, replay=0.1, gap=0.1, conflict=0.1)


def fixed_keys(count: int) -> list[ec.EllipticCurvePrivateKey]:
    return [ec.derive_private_key(1000 + i, ec.SECP256R1()) for i in range(count)]


def fleet(count: int = 6, *, pv_share: float = 0.5, seed: int = 7) -> list[FleetMeter]:
    return make_fleet(count, seed=seed, pv_share=pv_share, keys=fixed_keys(count))


def plan(
    meters: list[FleetMeter],
    *,
    ticks: int = 96,
    faults: FaultRates | None = None,
    seed: int = 7,
    interval_s: int = 900,
) -> list[Planned]:
    return [
        p
        for tick in generate(
            meters,
            chain_id=CHAIN_ID,
            start=START,
            interval_s=interval_s,
            ticks=ticks,
            faults=faults or FaultRates(),
            seed=seed,
        )
        for p in tick
    ]


def fresh(planned: Sequence[Planned]) -> list[Planned]:
    """The meters' new readings (not the replays and conflicts of earlier ones)."""
    return [p for p in planned if p.fault not in {"replay", "conflict"}]


def test_profile_tables_are_whole_watts_and_pv_is_zero_at_night() -> None:
    assert len(HOUSEHOLD_W) == len(PV_PER_MILLE) == DAY // SLOT_S
    assert all(isinstance(w, int) and w > 0 for w in HOUSEHOLD_W)
    assert all(isinstance(v, int) and 0 <= v <= 1000 for v in PV_PER_MILLE)
    assert max(PV_PER_MILLE) == PV_PER_MILLE[12 * 4] == 1000  # the bell peaks at noon
    night = [v for slot, v in enumerate(PV_PER_MILLE) if slot < 5 * 4 or slot >= 19 * 4]
    assert set(night) == {0}


def test_registers_are_integer_wh_and_never_decrease() -> None:
    meters = fleet()
    readings = [p.reading for p in plan(meters, ticks=2 * 96)]
    by_meter: dict[bytes, list[tuple[int, int]]] = {}
    for r in readings:
        assert type(r.import_wh) is int and type(r.export_wh) is int
        by_meter.setdefault(r.meter_id, []).append((r.import_wh, r.export_wh))
    assert len(by_meter) == len(meters)
    for registers in by_meter.values():
        assert all(
            b[0] >= a[0] and b[1] >= a[1] for a, b in zip(registers, registers[1:], strict=False)
        )
        # Two days of load move the import register by kWh, not by nothing.
        assert registers[-1][0] - registers[0][0] > 1000
    for meter in meters:
        assert type(meter.state.import_j) is int and 0 <= meter.state.import_j < 3600


def test_households_never_export_and_pv_exports_only_in_daytime() -> None:
    meters = fleet(8, pv_share=0.5)
    kinds = {m.raw_id: m.kind for m in meters}
    assert sorted(kinds.values()).count(MeterKind.PV) == 4
    last: dict[bytes, int] = {}
    exported_at: list[int] = []
    for p in fresh(plan(meters, ticks=3 * 96)):
        r = p.reading
        if r.meter_id in last and r.export_wh > last[r.meter_id]:
            assert kinds[r.meter_id] is MeterKind.PV
            exported_at.append(r.timestamp)
        last[r.meter_id] = r.export_wh
    assert exported_at, "PV meters exported nothing in three days"
    for timestamp in exported_at:
        # The interval ending at `timestamp` overlaps the PV bell (05:00 .. 19:00 UTC).
        hour = (timestamp - SLOT_S) % DAY // 3600
        assert 5 <= hour < 19, timestamp
    # A night interval imports for every meter, PV or not.
    night = [p.reading for p in fresh(plan(fleet(8, pv_share=0.5), ticks=8))]
    for now, before in zip(night[8:], night, strict=False):
        assert now.meter_id == before.meter_id
        assert now.export_wh == before.export_wh and now.import_wh > before.import_wh


def test_timestamps_are_on_the_grid_and_seqs_contiguous_except_gaps() -> None:
    meters = fleet()
    planned = fresh(plan(meters, ticks=200, faults=ALL_FAULTS))
    by_meter: dict[str, list[Planned]] = {}
    for p in planned:
        assert p.reading.timestamp % 900 == 0
        by_meter.setdefault(p.meter_id, []).append(p)
    gaps = 0
    for readings in by_meter.values():
        assert readings[0].reading.seq in (1, 2)  # 2 if the very first reading skipped one
        assert [p.reading.timestamp for p in readings] == [START + 900 * k for k in range(1, 201)]
        for before, after in zip(readings, readings[1:], strict=False):
            step = after.reading.seq - before.reading.seq
            assert step == (2 if after.fault == "gap" else 1)
            gaps += after.fault == "gap"
    assert gaps > 0


def test_the_same_seed_and_keys_give_the_same_submissions() -> None:
    first = plan(fleet(seed=3), faults=ALL_FAULTS, seed=3)
    second = plan(fleet(seed=3), faults=ALL_FAULTS, seed=3)
    assert [(p.canonical, p.signature, p.fault) for p in first] == [
        (p.canonical, p.signature, p.fault) for p in second
    ]
    other = plan(fleet(seed=4), faults=ALL_FAULTS, seed=4)
    assert [p.canonical for p in other] != [p.canonical for p in first]


def test_fault_rates_do_not_change_the_energy_measured() -> None:
    clean = fresh(plan(fleet(), ticks=50))
    faulty = fresh(plan(fleet(), ticks=50, faults=ALL_FAULTS))
    assert [(p.reading.import_wh, p.reading.export_wh) for p in clean] == [
        (p.reading.import_wh, p.reading.export_wh) for p in faulty
    ]


def test_every_fault_kind_is_produced_with_its_expected_outcome() -> None:
    meters = fleet()
    keys = {m.meter_id: encode_public_key(m.key.public_key()) for m in meters}
    planned = plan(meters, ticks=100, faults=ALL_FAULTS)
    expected = {p.fault: p.expected.key for p in planned}
    assert expected == {
        "none": "accepted",
        "gap": "accepted",
        "bad_signature": "rejected:bad_signature",
        "replay": "duplicate",
        "conflict": "rejected:conflicting_reading",
    }
    sent: dict[tuple[str, int], bytes] = {}
    for p in planned:
        assert decode(p.canonical) == p.reading
        if p.fault == "bad_signature":
            with pytest.raises(ReadingSignatureError):
                verify_reading_signature(
                    KeyAlgorithm.P256, keys[p.meter_id], p.canonical, p.signature
                )
            continue
        verify_reading_signature(KeyAlgorithm.P256, keys[p.meter_id], p.canonical, p.signature)
        key = (p.meter_id, p.reading.seq)
        if p.fault == "replay":
            assert sent[key] == p.canonical  # an earlier stored reading, unchanged
        elif p.fault == "conflict":
            assert sent[key] != p.canonical  # an earlier stored seq, other content
        else:
            assert key not in sent
            sent[key] = p.canonical


def test_no_faults_means_every_reading_is_expected_accepted() -> None:
    planned = plan(fleet(), ticks=20)
    assert {p.fault for p in planned} == {"none"}
    assert len(planned) == 6 * 20


def test_energy_over_a_day_is_the_same_whatever_the_interval() -> None:
    day_j = sum(HOUSEHOLD_W) * SLOT_S
    for interval in (60, 300, 900, 3600, 7 * 60):
        total = sum(
            _profile_j(HOUSEHOLD_W, START + k, min(START + k + interval, START + DAY))
            for k in range(0, DAY, interval)
        )
        assert total == day_j, interval
    meter = fleet(1, pv_share=1.0)[0]
    imported, exported = interval_energy_j(meter, START + 12 * 3600, START + 13 * 3600, 100, 100)
    assert (imported, exported) == (0, exported) and exported > 0  # noon: PV beats load
    imported, exported = interval_energy_j(meter, START, START + 3600, 100, 100)
    assert imported > 0 and exported == 0  # midnight: load only


def test_every_tick_advances_every_meter_whatever_the_interval() -> None:
    for interval in (60, 3600):
        meters = fleet(2)
        ticks = list(
            generate(
                meters, chain_id=CHAIN_ID, start=START, interval_s=interval,
                ticks=DAY // interval, faults=FaultRates(), seed=1,
            )
        )  # fmt: skip
        assert all(len(tick) == 2 for tick in ticks)
        assert all(m.state.last_timestamp == START + DAY for m in meters)
        assert all(0 <= m.state.import_j < 3600 for m in meters)


class FakeGateway:
    """The gateway's rules that the faults exercise, in memory."""

    def __init__(self, meters: Sequence[FleetMeter]) -> None:
        self.keys = {m.meter_id: encode_public_key(m.key.public_key()) for m in meters}
        self.stored: dict[tuple[str, int], bytes] = {}
        self.batches: list[int] = []

    def __call__(self, batch: Sequence[Planned]) -> list[dict[str, Any]]:
        self.batches.append(len(batch))
        return [self.one(p) for p in batch]

    def one(self, p: Planned) -> dict[str, Any]:
        try:
            verify_reading_signature(
                KeyAlgorithm.P256, self.keys[p.meter_id], p.canonical, p.signature
            )
        except ReadingSignatureError:
            return {"status": "rejected", "code": "bad_signature"}
        key = (p.meter_id, p.reading.seq)
        if key in self.stored:
            if self.stored[key] == p.canonical:
                return {"status": "duplicate", "code": None}
            return {"status": "rejected", "code": "conflicting_reading"}
        self.stored[key] = p.canonical
        return {"status": "accepted", "code": None}


def test_run_against_a_correct_gateway_has_no_mismatches() -> None:
    meters = fleet()
    gateway = FakeGateway(meters)
    out = io.StringIO()
    summary = run(
        generate(meters, chain_id=CHAIN_ID, start=START, interval_s=900, ticks=100,
                 faults=ALL_FAULTS, seed=7),
        gateway, batch_size=64, speed=0, progress=Progress(out, every_s=0),
    )  # fmt: skip
    assert summary["mismatches"] == 0
    assert max(gateway.batches) == 64
    assert summary["sent"] == sum(gateway.batches)
    assert set(summary["faults"]) == {"none", "gap", "bad_signature", "replay", "conflict"}
    for kind, counts in summary["faults"].items():
        assert counts["expected"] == counts["actual"], kind
        assert counts["count"] > 0
    assert summary["by_code"] == {
        "bad_signature": summary["faults"]["bad_signature"]["count"],
        "conflicting_reading": summary["faults"]["conflict"]["count"],
    }
    assert summary["by_status"]["duplicate"] == summary["faults"]["replay"]["count"]
    assert "readings/s" in out.getvalue()  # progress went to the given stream


def test_a_wrong_answer_is_counted_as_a_mismatch() -> None:
    meters = fleet(2)

    def lenient(batch: Sequence[Planned]) -> list[dict[str, Any]]:
        return [{"status": "accepted", "code": None} for _ in batch]

    summary = run(
        generate(meters, chain_id=CHAIN_ID, start=START, interval_s=900, ticks=50,
                 faults=ALL_FAULTS, seed=7),
        lenient, speed=0,
    )  # fmt: skip
    faulted = sum(c["count"] for k, c in summary["faults"].items() if k not in {"none", "gap"})
    assert summary["mismatches"] == faulted > 0
    assert summary["mismatch_examples"][0]["actual"] == "accepted"


def test_a_short_answer_from_the_gateway_is_an_error() -> None:
    with pytest.raises(SimulationError, match="results for"):
        run(
            generate(fleet(2), chain_id=CHAIN_ID, start=START, interval_s=900, ticks=1,
                     faults=FaultRates(), seed=1),
            lambda batch: [], speed=0,
        )  # fmt: skip


def test_speed_paces_ticks_in_simulated_seconds_per_real_second() -> None:
    meters = fleet(2)
    now = [0.0]
    sent_at: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def send(batch: Sequence[Planned]) -> list[dict[str, Any]]:
        sent_at.append(now[0])
        return [{"status": "accepted", "code": None} for _ in batch]

    run(
        generate(meters, chain_id=CHAIN_ID, start=START, interval_s=900, ticks=4,
                 faults=FaultRates(), seed=1),
        send, speed=900, interval_s=900, sleep=sleep, clock=lambda: now[0],
        wall_clock=lambda: START + DAY,
    )  # fmt: skip
    assert sent_at == [0.0, 1.0, 2.0, 3.0]  # one 15-minute tick per second


def test_a_tick_is_never_sent_before_its_time_on_the_wall_clock() -> None:
    now = [float(START)]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    run(
        generate(fleet(1), chain_id=CHAIN_ID, start=START, interval_s=900, ticks=2,
                 faults=FaultRates(), seed=1),
        lambda batch: [{"status": "accepted", "code": None} for _ in batch],
        speed=0, sleep=sleep, wall_clock=lambda: now[0],
    )  # fmt: skip
    assert slept == [900.0, 900.0]


def test_default_start_is_a_backfill_on_the_grid_that_ends_by_now() -> None:
    now = 1_795_353_780
    start = default_start(now, 3600, 900)
    assert start % 900 == 0
    assert start + 3600 <= now < start + 3600 + 900


@pytest.mark.parametrize(
    ("text", "seconds"), [("900", 900), ("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_bad_durations_and_fault_specs_are_refused() -> None:
    with pytest.raises(SimulationError):
        parse_duration("15 minutes")
    with pytest.raises(SimulationError, match="bad fault"):
        FaultRates.parse("typo=0.1")
    with pytest.raises(SimulationError, match="outside"):
        FaultRates.parse("replay=1.5")
    assert FaultRates.parse("bad_signature=0.01, replay=0.02") == FaultRates(
        bad_signature=0.01, replay=0.02
    )
    assert FaultRates.parse("") == FaultRates()


def test_a_saved_fleet_continues_with_the_same_keys_and_counters(tmp_path: Path) -> None:
    meters = fleet(3)
    plan(meters, ticks=10)
    save_fleet(tmp_path, meters, chain_id=CHAIN_ID)
    loaded = load_fleet(tmp_path)
    assert loaded is not None
    again, extra = loaded
    assert extra["chain_id"] == CHAIN_ID
    assert [m.state for m in again] == [m.state for m in meters]
    assert [encode_public_key(m.key.public_key()) for m in again] == [
        encode_public_key(m.key.public_key()) for m in meters
    ]
    assert (tmp_path / "SIM-000001.pem").stat().st_mode & 0o777 == 0o600
    first = fresh(plan(again, ticks=1))
    assert {p.reading.seq for p in first} == {11}
    assert load_fleet(tmp_path / "nothing-here") is None


def test_cli_has_a_simulate_command() -> None:
    args = build_parser().parse_args(
        ["simulate", "--meters", "5", "--speed", "0", "--faults", "gap=0.1", "--keys-dir", "k"]
    )
    assert args.meters == 5 and args.speed == 0 and args.faults == "gap=0.1"
    assert args.interval == "15m" and args.duration == "1h" and args.batch_size == 500


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    connections: ClassVar[set[tuple[str, int]]] = set()
    status = 202

    def do_POST(self) -> None:
        _Handler.connections.add(self.client_address)
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        assert self.path == "/v1/readings"
        if _Handler.status == 202:
            answer = {"results": [{"status": "accepted", "code": None} for _ in body["readings"]]}
        else:
            answer = {"error": {"code": "batch_too_large", "message": "too many"}}
        data = json.dumps(answer).encode()
        self.send_response(_Handler.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    _Handler.connections.clear()
    _Handler.status = 202
    with local_http_server(_Handler) as url:
        yield url


def test_http_sender_posts_batches_over_one_kept_alive_connection(http_server: str) -> None:
    sender = HttpSender(http_server)
    try:
        summary = run(
            generate(fleet(3), chain_id=CHAIN_ID, start=START, interval_s=900, ticks=10,
                     faults=FaultRates(), seed=1),
            sender, batch_size=7, speed=0,
        )  # fmt: skip
    finally:
        sender.close()
    assert summary["sent"] == 30 and summary["mismatches"] == 0
    assert len(_Handler.connections) == 1  # five requests, one connection


def test_http_sender_reports_a_refused_batch(http_server: str) -> None:
    _Handler.status = 413
    sender = HttpSender(http_server)
    planned = plan(fleet(1), ticks=2)
    with pytest.raises(SimulationError, match="413.*batch_too_large"):
        sender(planned)
    sender.close()
    with pytest.raises(SimulationError, match="not http"):
        HttpSender("ftp://example.org")


def test_progress_is_a_rich_bar_with_the_counts_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    progress = Progress(out)
    tally = Tally()
    tally.sent, tally.by_status["accepted"] = 7, 7
    progress.show(tally, final=False)
    progress.show(tally, final=True)
    text = out.getvalue()
    assert "simulate" in text and "7/?" in text and "accepted 7" in text  # total unknown
    assert "\x1b[" in text  # drawn with terminal control codes, not plain lines
