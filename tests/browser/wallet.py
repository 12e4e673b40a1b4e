"""A browser wallet for the page tests: an EIP-1193 provider (`window.ethereum`) injected into the
page before its scripts run, whose accounts and signatures come from a test key held by the
test process (eth_account). The page calls `window.ethereum.request(...)` exactly as it would
call MetaMask; signing crosses into Python through `page.expose_function`, so the key never
enters the page.

It answers what a sign-in needs: `eth_requestAccounts`/`eth_accounts` (the one address),
`eth_chainId` (the chain it was given) and `personal_sign` (EIP-191 over the bytes the page sends,
refused for any other address), and what a relayed complaint step needs: `eth_signTypedData_v4`
(EIP-712 over the JSON typed data the page sends, as MetaMask takes it: `[address, json]`,
refused for any other address). Anything else is refused with EIP-1193's 4200 "unsupported
method", so a page that needs more shows up as a failing test rather than a silent stub.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Page

_PROVIDER = """
(() => {
  const address = %(address)s;
  const chainId = %(chain_id)s;
  const fail = (code, message) => Object.assign(new Error(message), { code });
  window.ethereum = {
    isTestWallet: true,
    async request({ method, params = [] }) {
      switch (method) {
        case "eth_requestAccounts":
        case "eth_accounts":
          return [address];
        case "eth_chainId":
          return chainId;
        case "personal_sign": {
          const [data, from] = params;
          if (String(from).toLowerCase() !== address.toLowerCase()) {
            throw fail(4100, "personal_sign for an account this wallet does not hold");
          }
          return await window.__testWalletPersonalSign(data);
        }
        case "eth_signTypedData_v4": {
          const [from, typedData] = params;
          if (String(from).toLowerCase() !== address.toLowerCase()) {
            throw fail(4100, "eth_signTypedData_v4 for an account this wallet does not hold");
          }
          return await window.__testWalletSignTypedData(typedData);
        }
        default:
          throw fail(4200, "unsupported method " + method);
      }
    },
    on() {},
    removeListener() {},
  };
})();
"""


@dataclass
class TestWallet:
    """The key behind the injected provider, and every message it was asked to sign."""

    __test__ = False  # not a test class, despite its name

    account: LocalAccount
    signed: list[str] = field(default_factory=list)
    signed_typed_data: list[dict[str, Any]] = field(default_factory=list)

    def personal_sign(self, data: str) -> str:
        """EIP-191 over `data` (0x-hex bytes, as wallets receive them from `personal_sign`)."""
        message = bytes.fromhex(data.removeprefix("0x"))
        self.signed.append(message.decode("utf-8"))
        signed = Account.sign_message(
            encode_defunct(primitive=message), private_key=self.account.key
        )
        return "0x" + bytes(signed.signature).hex()

    def sign_typed_data(self, typed_data_json: str) -> str:
        """EIP-712 over `typed_data_json` (the JSON string `eth_signTypedData_v4` receives)."""
        typed_data = json.loads(typed_data_json)
        self.signed_typed_data.append(typed_data)
        signed = Account.sign_message(
            encode_typed_data(full_message=typed_data), private_key=self.account.key
        )
        return "0x" + bytes(signed.signature).hex()


def install_wallet(page: Page, account: LocalAccount, chain_id: int) -> TestWallet:
    """Injects a wallet holding `account` on `chain_id` into `page` (before it loads)."""
    wallet = TestWallet(account)
    page.expose_function("__testWalletPersonalSign", wallet.personal_sign)
    page.expose_function("__testWalletSignTypedData", wallet.sign_typed_data)
    page.add_init_script(
        _PROVIDER % {"address": f'"{account.address}"', "chain_id": f'"{hex(chain_id)}"'}
    )
    return wallet
