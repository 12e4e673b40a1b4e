"""Settings from LEDGER_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import ConfigError
from ledger.settings import DEV_OPERATOR_KEY, Settings

# The second account of the development mnemonic: a valid key that is not the default one.
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def test_defaults_start_a_local_ganache_with_data_under_data() -> None:
    settings = Settings.from_env({})
    assert settings.rpc_url is None
    assert settings.chain == "ganache"
    assert settings.data_dir == Path("data")
    assert settings.sqlite_path == Path("data/ledger.db")
    assert settings.operator_key is None
    assert settings.signing_key == DEV_OPERATOR_KEY


def test_variables_with_the_prefix_are_read_and_typed() -> None:
    settings = Settings.from_env(
        {
            "LEDGER_RPC_URL": "http://10.0.0.1:8545",
            "LEDGER_OPERATOR_KEY": OTHER_KEY,
            "LEDGER_PORT": "9000",
            "OTHER": "x",
        }
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


def test_a_challenge_period_not_shorter_than_the_settlement_window_is_refused() -> None:
    with pytest.raises(ConfigError, match="LEDGER_CHALLENGE_PERIOD_S"):
        Settings.from_env(
            {"LEDGER_CHALLENGE_PERIOD_S": "3600", "LEDGER_MARKET_SETTLEMENT_WINDOW_S": "3600"}
        )


def test_the_challenge_period_is_five_minutes_unless_set() -> None:
    assert Settings.from_env({}).challenge_period_s == 300
    assert Settings.from_env({"LEDGER_CHALLENGE_PERIOD_S": "60"}).challenge_period_s == 60


def test_unknown_chain_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="LEDGER_CHAIN"):
        Settings.from_env({"LEDGER_CHAIN": "hardhat"})


def test_sqlite_url_names_the_file_and_postgres_has_none() -> None:
    assert Settings.from_env({"LEDGER_DATABASE_URL": "sqlite:///tmp/x.db"}).sqlite_path == Path(
        "tmp/x.db"
    )
    assert Settings.from_env({"LEDGER_DATABASE_URL": "postgresql://db/x"}).sqlite_path is None


def test_an_external_chain_without_an_operator_key_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="LEDGER_OPERATOR_KEY must be set when LEDGER_RPC_URL"):
        Settings.from_env({"LEDGER_RPC_URL": "https://node.example.org"})


def test_an_external_chain_signs_with_the_given_operator_key() -> None:
    settings = Settings.from_env(
        {"LEDGER_RPC_URL": "https://node.example.org", "LEDGER_OPERATOR_KEY": OTHER_KEY}
    )

    assert settings.signing_key == OTHER_KEY


def test_even_the_development_key_must_be_named_for_an_external_chain() -> None:
    settings = Settings.from_env(
        {"LEDGER_RPC_URL": "http://127.0.0.1:8545", "LEDGER_OPERATOR_KEY": DEV_OPERATOR_KEY}
    )

    assert settings.signing_key == DEV_OPERATOR_KEY


@pytest.mark.parametrize(
    "bad_key",
    [
        "0xnot-a-key-at-all",
        "0x" + "ab" * 31,  # 31 bytes
        "0x" + "ab" * 33,  # 33 bytes
        "0x" + "00" * 32,  # zero is no private key
        "0x" + "ff" * 32,  # beyond the order of secp256k1
        "zz" * 32,
    ],
)
def test_a_malformed_operator_key_is_a_config_error_that_does_not_repeat_it(
    bad_key: str,
) -> None:
    with pytest.raises(ConfigError, match="LEDGER_OPERATOR_KEY: .*not a private key") as refused:
        Settings.from_env({"LEDGER_OPERATOR_KEY": bad_key})

    assert bad_key not in str(refused.value)


def test_an_operator_key_without_0x_is_accepted() -> None:
    assert Settings.from_env({"LEDGER_OPERATOR_KEY": OTHER_KEY[2:]}).signing_key == OTHER_KEY[2:]


def test_the_settings_repr_shows_no_key_or_token() -> None:
    key = "0x" + "ab" * 32
    shown = repr(
        Settings(operator_key=key, registrar_token="reg-s3cret", operator_token="op-s3cret")
    )
    assert key[2:] not in shown and "reg-s3cret" not in shown and "op-s3cret" not in shown
