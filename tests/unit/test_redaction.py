"""Credentials never leave in a URL: health answers, error messages, the start-up line."""

from __future__ import annotations

import pytest

from ledger.errors import ChainUnavailable
from ledger.redaction import redact_text, redact_url

INFURA_KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("https://rpc.example.org/arbitrum-mainnet", "https://rpc.example.org/arbitrum-mainnet"),
        ("https://user:s3cret@node.example.org:8545/", "https://***@node.example.org:8545/"),
        ("https://apikeyonly@node.example.org/", "https://***@node.example.org/"),
        (f"https://mainnet.infura.io/v3/{INFURA_KEY}", "https://mainnet.infura.io/v3/***"),
        (
            "https://eth-mainnet.g.alchemy.com/v2/Ab3dEfGh",
            "https://eth-mainnet.g.alchemy.com/v2/***",
        ),
        (
            "https://node.example.org/rpc?apikey=K3Y&x=1",
            "https://node.example.org/rpc?apikey=***&x=***",
        ),
        ("https://node.example.org/#tok3n", "https://node.example.org/#***"),
    ],
)
def test_redact_url_keeps_the_endpoint_and_masks_its_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_masks_a_url_inside_a_message() -> None:
    text = "404 Client Error: Not Found for url: https://u:pw1234@h.example.org/x?key=abc123"

    assert redact_text(text) == (
        "404 Client Error: Not Found for url: https://***@h.example.org/x?key=***"
    )


def test_redact_text_masks_the_secrets_of_a_url_quoted_only_in_part() -> None:
    url = f"https://user:s3cret@mainnet.infura.io/v3/{INFURA_KEY}?apikey=K3Y99"
    reason = (
        "HTTPSConnectionPool(host='mainnet.infura.io', port=443): Max retries exceeded with "
        f"url: /v3/{INFURA_KEY}?apikey=K3Y99 (user s3cret)"
    )

    shown = redact_text(reason, url)

    assert INFURA_KEY not in shown and "K3Y99" not in shown and "s3cret" not in shown
    assert "host='mainnet.infura.io'" in shown


def test_chain_unavailable_names_the_endpoint_without_its_credentials() -> None:
    url = f"https://user:s3cret@mainnet.infura.io/v3/{INFURA_KEY}"

    error = ChainUnavailable(rpc_url=url, reason=f"connection refused for {url}")

    assert str(error) == (
        "chain at https://***@mainnet.infura.io/v3/*** is unreachable: "
        "connection refused for https://***@mainnet.infura.io/v3/***"
    )
    assert error.rpc_url == "https://***@mainnet.infura.io/v3/***"
