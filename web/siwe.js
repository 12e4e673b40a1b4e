// Sign-In with Ethereum, shared by the customer page and the service page (docs/access.md).
"use strict";

/** The EIP-4361 message the gateway checks (docs/access.md): the domain, URI and chain the
 * nonce's answer names (the gateway's public address, which is this page's unless a proxy
 * serves it elsewhere), the nonce, valid for ten minutes. `chainId` is used when the nonce's
 * answer names none. */
function siweMessage({ address, nonce, chainId }) {
  const issued = new Date();
  const expires = new Date(issued.getTime() + 10 * 60 * 1000);
  return [
    `${nonce.domain || location.host} wants you to sign in with your Ethereum account:`,
    address,
    "",
    "Sign in to the energy ledger to read your meters' readings and your bills.",
    "",
    `URI: ${nonce.uri || location.origin}`,
    "Version: 1",
    `Chain ID: ${nonce.chain_id || chainId}`,
    `Nonce: ${nonce.nonce}`,
    `Issued At: ${issued.toISOString()}`,
    `Expiration Time: ${expires.toISOString()}`,
  ].join("\n");
}
