// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The fields of a native reading (docs/reading-format.md), chain id excepted: the leaf is
/// rebuilt with the chain id of the contract checking it, so a reading of another chain never
/// verifies.
struct Reading {
    bytes32 meterId;
    uint64 seq;
    uint64 timestamp;
    uint64 importWh;
    uint64 exportWh;
    uint32 status;
}

/// @title ReadingLeaf
/// @notice The Merkle leaf of a native reading, rebuilt from its fields. Every contract that checks
/// a reading against an anchored batch computes the leaf here, so the leaf the anchorer writes
/// (ledger/readings/native.py) and the one each contract checks are one encoding, kept in one place.
/// @dev A contract must rebuild the leaf from the fields and never accept a leaf hash from its
/// caller: an inner node of the tree would verify too, with a shortened proof.
library ReadingLeaf {
    /// @dev keccak256("EnergyLedger.Reading.v1"), the first word of every canonical reading.
    bytes32 internal constant DOMAIN_TAG = keccak256("EnergyLedger.Reading.v1");

    /// @dev The leaf of `reading` on chain `chainId`, `keccak256(keccak256(canonical))`. The
    /// canonical bytes are `abi.encode` of the domain tag, the chain id and the fields: eight
    /// 32-byte words with no dynamic part, the bytes whose SHA-256 digest the meter signed. Hashed
    /// twice so the leaf's preimage is 32 bytes long and no 64-byte inner-node preimage can pass
    /// as a leaf.
    function hash(Reading calldata reading, uint256 chainId) internal pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(
                    abi.encode(
                        DOMAIN_TAG,
                        chainId,
                        reading.meterId,
                        reading.seq,
                        reading.timestamp,
                        reading.importWh,
                        reading.exportWh,
                        reading.status
                    )
                )
            )
        );
    }
}
