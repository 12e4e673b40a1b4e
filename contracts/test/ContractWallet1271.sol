// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title ContractWallet1271
/// @notice A minimal contract wallet for the sign-in tests: it accepts (EIP-1271) what its owner
/// key signed, so a customer whose address is this contract can sign in through the chain.
contract ContractWallet1271 {
    bytes4 private constant _MAGIC_VALUE = 0x1626ba7e;

    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice EIP-1271: the magic value when `signature` over `hash` is the owner's.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(hash, signature);
        return error == ECDSA.RecoverError.NoError && signer == owner ? _MAGIC_VALUE : bytes4(0);
    }
}
