"""Settings from LEDGER_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import ConfigError
from ledger.settings import DEV_OPERATOR_KEY, Settings


def test_defaults_start_a_local_ganache_with_data_under_data() -> None:
    settings = Settings.from_env({})
    assert settings.rpc_url is None
    assert settings.chain == "ganache"
    assert settings.data_dir == Path("data")
    assert settings.sqlite_path == Path("data/ledger.db")
    assert settings.operator_key == DEV_OPERATOR_KEY


def test_variables_with_the_prefix_are_read_and_typed() -> None:
    settings = Settings.from_env(
        {"LEDGER_RPC_URL": "http://10.0.0.1:8545", "LEDGER_PORT": "9000", "OTHER": "x"}
    )
    assert settings.rpc_url == "http://10.0.0.1:8545"
    assert settings.port == 9000


def test_empty_variables_count_as_unset() -> None:
    assert Settings.from_env({"LEDGER_RPC_URL": ""}).rpc_url is None


def test_invalid_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LEDGER_PORT"):
        Settings.from_env({"LEDGER_PORT": "eighty"})


def test_unknown_variable_is_refused_so_typos_do_not_pass_silently() -> None:
    with pytest.raises(ConfigError, match="LEDGER_RPC_ULR"):
        Settings.from_env({"LEDGER_RPC_ULR": "http://x"})


def test_unknown_chain_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="LEDGER_CHAIN"):
        Settings.from_env({"LEDGER_CHAIN": "hardhat"})


def test_sqlite_url_names_the_file_and_postgres_has_none() -> None:
    assert Settings.from_env({"LEDGER_DATABASE_URL": "sqlite:///tmp/x.db"}).sqlite_path == Path(
        "tmp/x.db"
    )
    assert Settings.from_env({"LEDGER_DATABASE_URL": "postgresql://db/x"}).sqlite_path is None
