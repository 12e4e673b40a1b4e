"""What the brownie scripts check before they send anything: the meters CSV, the mint arguments,
and whether the chain brownie started is the one `make run` starts again. No chain, no brownie:
the scripts import brownie only inside the functions that talk to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import ConfigError
from ledger.meters.keys import KeyAlgorithm, encode_public_key, generate_key
from ledger.settings import Settings
from scripts._ledger import check_chain_is_kept
from scripts.mint import Grant, MintArgumentError, parse_grants
from scripts.register_meters import COLUMNS, MeterCsvError, read_meter_csv

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
HEADER = ",".join(COLUMNS)


def ed25519_hex() -> str:
    return "0x" + encode_public_key(generate_key(KeyAlgorithm.ED25519).public_key()).hex()


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "meters.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(MeterCsvError) as caught:
        read_meter_csv(path)
    assert caught.value.code == "invalid_meter_csv"
    return caught.value.problems


def test_the_example_csv_reads_as_four_meters() -> None:
    rows = read_meter_csv(PROJECT_ROOT / "scripts" / "meters.example.csv")
    assert [row.meter_id for row in rows] == [
        "DEMO-P256-0001", "DEMO-ED25519-0002", "DEMO-K1-0003", "DEMO-P256-0004",
    ]  # fmt: skip
    assert [row.valid_from for row in rows] == [1_735_689_600, 1_735_689_600, None, None]


def test_a_bad_owner_is_named_by_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER, f"M1,{ALICE},ed25519,{ed25519_hex()},", "M2,bob,ed25519,00,")
    assert problems_of(path) == [
        "line 3: owner 'bob' is not an account address (0x + 40 hex digits)"
    ]


def test_every_bad_line_is_named_not_only_the_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# a comment line, then the header",
        HEADER,
        f"M1,{ALICE},rsa,{ed25519_hex()},",
        "",
        f"M2,{ALICE},ed25519,0x1234,",
        f"M3,{ALICE},ed25519,{ed25519_hex()},1 May 2025",
    )
    lines = [problem.split(":")[0] for problem in problems_of(path)]
    assert lines == ["line 3", "line 5", "line 6"]


def test_a_meter_given_twice_names_both_lines(tmp_path: Path) -> None:
    key = ed25519_hex()
    path = write(tmp_path, HEADER, f"M1,{ALICE},ed25519,{key},", f"M1,{ALICE},ed25519,{key},")
    assert problems_of(path) == ["line 3: meter M1 is on line 2 already"]


def test_the_zero_address_cannot_own_a_meter(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER, f"M1,0x{'00' * 20},ed25519,{ed25519_hex()},")
    assert problems_of(path) == ["line 2: owner is the zero address"]


def test_a_valid_from_without_a_time_zone_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER, f"M1,{ALICE},ed25519,{ed25519_hex()},2025-01-01T00:00:00")
    assert problems_of(path) == [
        "line 2: valid_from '2025-01-01T00:00:00' has no time zone: end it with Z or an offset"
    ]


def test_a_row_with_a_missing_cell_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER, f"M1,{ALICE},ed25519")
    assert problems_of(path) == ["line 2: 3 cells, the header names 5"]


def test_a_header_without_the_five_columns_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "meter,owner,key", f"M1,{ALICE},{ed25519_hex()}")
    assert problems_of(path) == [
        "line 1: the header must name the columns meter_id, owner, algorithm, public_key, "
        "valid_from"
    ]


def test_a_quoted_pem_cell_spanning_lines_keeps_the_line_numbers(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = (
        generate_key(KeyAlgorithm.P256)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    path = write(tmp_path, HEADER, f'M1,{ALICE},p256,"{pem}",', "M2,bob,p256,00,")
    assert problems_of(path)[0].startswith(f"line {3 + pem.count(chr(10))}: owner 'bob'")


def test_mint_arguments_become_grants() -> None:
    assert parse_grants([f"{ALICE.lower()}=2500000"]) == [Grant(ALICE, 2_500_000)]


@pytest.mark.parametrize(
    "argument", [f"{ALICE}=1.5", f"{ALICE}=0", f"{ALICE}=-3", f"{ALICE}", "alice=10", f"{ALICE}=²"]
)
def test_a_bad_mint_argument_is_named(argument: str) -> None:
    with pytest.raises(MintArgumentError) as caught:
        parse_grants([f"{ALICE}=1", argument])
    assert caught.value.code == "invalid_mint"
    assert repr(argument) in str(caught.value) and "nothing minted" in str(caught.value)


def ganache_command(db_path: str) -> list[str]:
    return ["node", "/x/node_modules/.bin/ganache", "--database.dbPath", db_path, "--port", "1"]


def test_a_chain_kept_where_ledger_serve_starts_its_own_is_accepted(tmp_path: Path) -> None:
    settings = Settings.from_env({"LEDGER_DATA_DIR": str(tmp_path / "data")})
    check_chain_is_kept(settings, ganache_command("data/chain/ganache"), tmp_path, 1337)


def test_a_chain_brownie_would_throw_away_is_refused(tmp_path: Path) -> None:
    settings = Settings.from_env({"LEDGER_DATA_DIR": str(tmp_path / "data")})
    with pytest.raises(ConfigError, match="keeps no state"):
        check_chain_is_kept(settings, ["ganache", "--server.port", "8545"], tmp_path, 1337)


def test_a_chain_kept_in_another_data_dir_is_refused(tmp_path: Path) -> None:
    settings = Settings.from_env({"LEDGER_DATA_DIR": str(tmp_path / "data")})
    with pytest.raises(ConfigError, match="LEDGER_DATA_DIR"):
        check_chain_is_kept(settings, ganache_command("other/chain/ganache"), tmp_path, 1337)


def test_a_chain_id_ledger_serve_would_not_use_is_refused(tmp_path: Path) -> None:
    settings = Settings.from_env({"LEDGER_DATA_DIR": str(tmp_path / "data")})
    with pytest.raises(ConfigError, match="LEDGER_CHAIN_ID"):
        check_chain_is_kept(settings, ganache_command("data/chain/ganache"), tmp_path, 31337)


def test_anvil_as_the_served_chain_is_refused(tmp_path: Path) -> None:
    settings = Settings.from_env({"LEDGER_DATA_DIR": str(tmp_path), "LEDGER_CHAIN": "anvil"})
    with pytest.raises(ConfigError, match="LEDGER_CHAIN is anvil"):
        check_chain_is_kept(settings, ganache_command("chain/ganache"), tmp_path, 1337)
