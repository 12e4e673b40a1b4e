// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Reading, ReadingLeaf} from "../libraries/ReadingLeaf.sol";

/// @title ReadingLeafHarness
/// @notice Test only, never deployed (contracts/test/ is left out of the ledger's build): exposes
/// the ReadingLeaf library so tests can compare its leaf with the Python encoder's.
contract ReadingLeafHarness {
    function domainTag() external pure returns (bytes32) {
        return ReadingLeaf.DOMAIN_TAG;
    }

    function leafTag() external pure returns (bytes32) {
        return ReadingLeaf.LEAF_TAG_V2;
    }

    function canonical(Reading calldata reading, uint256 chainId) external pure returns (bytes memory) {
        return ReadingLeaf.canonical(reading, chainId);
    }

    function hash(Reading calldata reading, uint256 chainId, bytes32 signedHash, bytes32 signatureHash)
        external
        pure
        returns (bytes32)
    {
        return ReadingLeaf.hash(reading, chainId, signedHash, signatureHash);
    }
}
