"""Every record of the OCMF interop corpus, checked against the table in its README.

The corpus (real records from KEBA, DZG, Isabellenhuette, eBZ, ebee, VW ... taken from the
S.A.F.E. Transparenzsoftware's test resources) is carried in the repository under
`tests/data/interop/ocmf/` (tests/data/README.md says where it comes from), so a plain clone
runs these tests. A missing corpus fails them; it never skips them.
"""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.chain.compiler import PROJECT_ROOT
from ledger.readings.ocmf.errors import (
    OcmfBadSignature,
    OcmfBadValue,
    OcmfError,
    OcmfUnsupportedCurve,
)
from ledger.readings.ocmf.record import OcmfRecord, Register, TimeStatus, parse_ocmf
from ledger.readings.ocmf.verify import verify_ocmf

CORPUS_DIR = Path(PROJECT_ROOT) / "tests" / "data" / "interop" / "ocmf"
OK = "ok"
BAD_SIGNATURE = "ocmf_bad_signature"

# Per file, each record's outcome in document order: OK or the error code. The counts are
# checked against the README's table below; the codes say *why* a record fails.
EXPECTED: dict[str, tuple[str, ...]] = {
    "keba_test.xml": (OK,) * 100,
    "keba_test_txn.xml": (OK,) * 100,
    "20211007-device-with-evt-ocmf-sss-ses.xml": (OK, OK),
    "OCMF-receipt-with_publickey_and_data.xml": (OK,),
    "OCMF-receipt-with_import_and_export.xml": (BAD_SIGNATURE,),
    "OCMF_Test_Data_00.xml": (OK, OK),
    "ocmf_sec.xml": (OK, OK),
    "Ocmf_Example_OBIS_98.8.0_2.8.0.xml": (OK,),
    "VW_OCMF_load.xml": (OK,),
    "ocmf_tariff_1.xml": (OK,),
    "test_ocmf_ebee_01.xml": (OK, OK),
    "test_ocmf_ebee_02.xml": (BAD_SIGNATURE, OK),  # the first record's RV was altered
    "test_ocmf_keba_kcp30.xml": (OK,),
    "test_ocmf_keba_kcp30_fail.xml": (BAD_SIGNATURE,),  # TM altered
    # The second record comes with the ebee P-256 key although SA says secp256k1.
    "second_key_fail_ocmf.xml": (OK, "ocmf_bad_key"),
    # The first SD encodes r and s as fixed 24-byte unsigned numbers inside a DER SEQUENCE
    # (r with its top bit set, s with a superfluous 00): not DER, not r||s, so refused.
    "ocmf-compleo-daten.xml": (BAD_SIGNATURE, OK),
    "test_ocmf_transaction_two_values.xml": ("ocmf_unsupported_curve",) * 2,
}


@dataclass(frozen=True)
class CorpusRecord:
    """One `<signedData>` text and the public key that applies to it."""

    text: str
    public_key: str


@dataclass(frozen=True)
class ReadmeRow:
    """One file's line in the README table; None stands for `-` (refused, not counted)."""

    records: int
    verify: int | None
    fail: int | None


def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.fail(
            f"OCMF interop corpus not found at {CORPUS_DIR}: the repository carries it in "
            "tests/data/interop/ocmf (its README.md and XML files); restore it from git",
            pytrace=False,
        )
    return CORPUS_DIR


def readme_table() -> dict[str, ReadmeRow]:
    """The README's expected-results table, one entry per file (`a.xml, b.xml` rows split)."""
    rows: dict[str, ReadmeRow] = {}
    for line in (corpus_dir() / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].endswith(".xml"):
            continue
        files = [name.strip() for name in cells[0].split(",")]
        counts = [int(count) for count in cells[1].split("+")]
        assert len(files) == len(counts), f"README row {line!r}: files and counts differ"
        for name, records in zip(files, counts, strict=True):
            rows[name] = ReadmeRow(
                records=records, verify=_count(cells[2], records), fail=_count(cells[3], records)
            )
    return rows


def _count(cell: str, records: int) -> int | None:
    if cell == "-":
        return None
    return records if cell == "all" else int(cell)


def load_records(name: str) -> list[CorpusRecord]:
    """The records of one corpus file, each with its key (per `<value>`, or one per file)."""
    data = (corpus_dir() / name).read_bytes()
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        # ocmf-compleo-daten.xml is bare <signedData> elements without a root element, its key
        # given as text ("Public key: ...") after them.
        root = ET.fromstring(b"<corpus>" + data + b"</corpus>")
    parents = {child: parent for parent in root.iter() for child in parent}
    records = []
    for signed in root.iter("signedData"):
        key_element = parents[signed].find("publicKey") if signed in parents else None
        key = key_element.text if key_element is not None else file_key(name, root)
        assert signed.text and key, f"{name}: a <signedData> or its key is empty"
        records.append(CorpusRecord(text=signed.text, public_key=key))
    assert records, f"{name}: no <signedData> element"
    return records


def file_key(name: str, root: ET.Element) -> str:
    keys = {element.text.strip() for element in root.iter("publicKey") if element.text}
    texts = "".join(root.itertext()) + "".join(e.tail or "" for e in root.iter())
    match = re.search(r"Public key:\s*([0-9A-Fa-f]+)", texts)
    if match:
        keys.add(match.group(1))
    if len(keys) != 1:
        pytest.fail(f"{name}: expected one public key for the file, found {len(keys)}")
    return keys.pop()


def outcome(record: CorpusRecord) -> str:
    try:
        verify_ocmf(parse_ocmf(record.text), record.public_key)
    except OcmfError as error:
        return error.code
    return OK


def parsed(name: str) -> list[OcmfRecord]:
    return [parse_ocmf(record.text) for record in load_records(name)]


def test_corpus_folder_is_present() -> None:
    assert corpus_dir().is_dir()


def test_the_corpus_is_carried_inside_the_repository_so_a_plain_clone_runs_it() -> None:
    # A clone with nothing beside it must pass: the corpus is read from inside the repository.
    assert corpus_dir().resolve().is_relative_to(Path(PROJECT_ROOT).resolve())
    tracked = subprocess.run(
        ["git", "ls-files", "--", str(corpus_dir())],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {Path(name).name for name in tracked} >= set(EXPECTED) | {"README.md"}


def test_a_missing_corpus_fails_instead_of_skipping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(globals(), "CORPUS_DIR", tmp_path / "absent")
    with pytest.raises(pytest.fail.Exception, match="OCMF interop corpus not found at .*absent"):
        corpus_dir()


def test_every_corpus_file_has_an_expectation_and_a_readme_row() -> None:
    on_disk = {path.name for path in corpus_dir().glob("*.xml")}
    assert on_disk == set(EXPECTED), "corpus files and this test's expectations differ"
    assert set(readme_table()) == on_disk, "corpus files and the README table differ"


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=str)
def test_corpus_file_verifies_as_the_readme_says(name: str) -> None:
    outcomes = tuple(outcome(record) for record in load_records(name))
    assert outcomes == EXPECTED[name]

    row = readme_table()[name]
    verified = outcomes.count(OK)
    refused = outcomes.count("ocmf_unsupported_curve")
    failed = len(outcomes) - verified - refused
    assert len(outcomes) == row.records
    if row.verify is None:  # `-`: the curve cannot be checked here, so nothing is accepted
        assert (verified, failed, refused) == (0, 0, row.records)
    else:
        assert (verified, failed, refused) == (row.verify, row.fail, 0)


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=str)
def test_every_corpus_record_parses(name: str) -> None:
    for record in parsed(name):
        assert record.payload_bytes.startswith(b"{")
        assert record.readings


def test_secp192k1_records_are_refused_with_the_unsupported_curve_error() -> None:
    for record in load_records("test_ocmf_transaction_two_values.xml"):
        with pytest.raises(OcmfUnsupportedCurve, match="secp192k1") as caught:
            verify_ocmf(parse_ocmf(record.text), record.public_key)
        assert caught.value.code == "ocmf_unsupported_curve"


def test_compleo_record_fails_for_its_non_der_signature_encoding() -> None:
    first = load_records("ocmf-compleo-daten.xml")[0]
    with pytest.raises(OcmfBadSignature, match="neither DER nor r\\|\\|s"):
        verify_ocmf(parse_ocmf(first.text), first.public_key)


def test_obis_2_8_0_example_has_exact_export_wh() -> None:
    (record,) = parsed("Ocmf_Example_OBIS_98.8.0_2.8.0.xml")
    assert [(r.register, r.wh, r.transaction, r.timestamp) for r in record.register_readings()] == [
        (Register.EXPORT, 1000, "B", 1630578593),  # "1.0" kWh, 2021-09-02T12:29:53+0200
        (Register.EXPORT, 2000, "E", 1630578607),  # "2.0" kWh
    ]
    other = [r for r in record.readings if r.register is None]
    assert [(r.obis, r.value) for r in other] == [
        ("1-0:98.8.0.FF", Decimal("0.0")),
        ("1-0:98.8.0.FF", Decimal("1.0")),
    ]


def test_keba_kcp30_kwh_with_decimals_are_kept_exactly_and_are_not_whole_wh() -> None:
    (record,) = parsed("test_ocmf_keba_kcp30.xml")
    assert [(r.register, r.value, r.unit) for r in record.readings] == [
        (Register.IMPORT, Decimal("0.2596"), "kWh"),
        (Register.IMPORT, Decimal("0.2597"), "kWh"),
    ]
    assert [r.timestamp for r in record.readings] == [1565690595, 1565690616]
    # 0.2596 kWh is 259.6 Wh: the ledger's registers hold whole Wh, so it is refused, not rounded.
    with pytest.raises(OcmfBadValue, match="is 259.6 Wh, not a whole number of Wh"):
        record.register_readings()


def test_vw_import_and_export_in_kwh_become_whole_wh_with_inherited_times() -> None:
    (record,) = parsed("VW_OCMF_load.xml")
    assert [(r.register, r.wh, r.transaction, r.timestamp) for r in record.register_readings()] == [
        (Register.IMPORT, 57584, "B", 1633518836),
        (Register.EXPORT, 4405, "B", 1633518836),  # TM and TX carried over from the entry before
        (Register.IMPORT, 58685, "E", 1633518913),
        (Register.EXPORT, 4405, "E", 1633518913),
    ]
    assert {r.time_status for r in record.readings} == {TimeStatus.RELATIVE}


def test_dzg_padded_string_values_become_whole_wh() -> None:
    begin, end = parsed("OCMF_Test_Data_00.xml")
    assert [(r.register, r.wh, r.timestamp) for r in begin.register_readings()] == [
        (Register.IMPORT, 9038, 1635236452)
    ]
    assert [r.wh for r in end.register_readings()] == [9038]
    duration = end.readings[1]
    assert (duration.obis, duration.register, duration.value, duration.unit) == (
        "01-00:00.08.06.FF",
        None,
        Decimal("30"),
        "sec",
    )


def test_wh_values_and_keba_kwh_values_become_whole_wh() -> None:
    compleo = parsed("ocmf-compleo-daten.xml")[0]
    assert [r.wh for r in compleo.register_readings()] == [2851485, 2851753]
    assert compleo.register_readings()[0].timestamp == 1666892330
    keba = parsed("keba_test.xml")[0]
    assert [(r.wh, r.time_status) for r in keba.register_readings()] == [
        (1234560, TimeStatus.UNSYNCHRONIZED),
        (1234560, TimeStatus.RELATIVE),
    ]
    assert keba.readings[2].obis == "1-b:1.9.0" and keba.readings[2].register is None
    ebee = parsed("test_ocmf_ebee_01.xml")
    assert [r.register_readings()[0].wh for r in ebee] == [7753, 7753]


def test_isabellenhuette_readings_keep_their_error_status() -> None:
    (record,) = parsed("OCMF-receipt-with_publickey_and_data.xml")
    readings = record.register_readings()
    assert [(r.wh, r.transaction) for r in readings] == [(0, "B"), (0, "C"), (0, "E")]
    assert {(r.status, r.error_flags) for r in readings} == {("E", "E")}


def test_bauer_transaction_register_is_not_the_cumulative_import() -> None:
    begin, end = parsed("20211007-device-with-evt-ocmf-sss-ses.xml")
    assert begin.readings[0].obis == "1-0:1.8.0*198"
    assert begin.register_readings() == () and end.register_readings() == ()
    assert begin.readings[0].timestamp == 1633613395
