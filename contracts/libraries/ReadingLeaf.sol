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
/// @notice The Merkle leaf of an anchored reading, rebuilt from its fields and from the hashes of
/// the bytes its meter signed and of its signature. Every contract that checks a reading against an
/// anchored batch computes the leaf here, so the leaf the anchorer writes
/// (ledger/readings/native.py `anchored_leaf`) and the one each contract checks are one encoding,
/// kept in one place.
/// @dev A contract must rebuild the leaf from the fields and never accept a leaf hash from its
/// caller: an inner node of the tree would verify too, with a shortened proof.
library ReadingLeaf {
    /// @dev keccak256("EnergyLedger.Reading.v1"), the first word of every canonical reading (the
    /// bytes a native meter signs; unchanged by leaf version 2).
    bytes32 internal constant DOMAIN_TAG = keccak256("EnergyLedger.Reading.v1");

    /// @dev keccak256("EnergyLedger.AnchoredReading.v2"), the first word of a version-2 leaf's
    /// preimage. A version-1 leaf hashed the canonical reading alone (first word DOMAIN_TAG), so
    /// no leaf of one version can be taken for a leaf of the other.
    bytes32 internal constant LEAF_TAG_V2 = keccak256("EnergyLedger.AnchoredReading.v2");

    /// @dev The canonical bytes of `reading` on chain `chainId`: `abi.encode` of the domain tag,
    /// the chain id and the fields, eight 32-byte words with no dynamic part; the bytes whose
    /// SHA-256 digest a native meter signs.
    function canonical(Reading calldata reading, uint256 chainId) internal pure returns (bytes memory) {
        return abi.encode(
            DOMAIN_TAG,
            chainId,
            reading.meterId,
            reading.seq,
            reading.timestamp,
            reading.importWh,
            reading.exportWh,
            reading.status
        );
    }

    /// @dev The version-2 leaf of `reading` on chain `chainId`:
    /// `keccak256(keccak256(abi.encode(LEAF_TAG_V2, chainId, fields..., signedHash, signatureHash)))`.
    /// `signedHash` is keccak256 of the exact bytes the meter signed (native: the canonical bytes;
    /// OCMF: the payload) and `signatureHash` keccak256 of the signature in its one fixed form
    /// (ECDSA: r || s, 64 bytes; Ed25519: the 64 bytes). Committing to both is what makes a fraud
    /// proof sound: a prover must show the very signature the operator anchored, so a genuine
    /// reading sent with another signature proves nothing. Hashed twice so the leaf's preimage is
    /// 32 bytes long and no 64-byte inner-node preimage can pass as a leaf.
    function hash(Reading calldata reading, uint256 chainId, bytes32 signedHash, bytes32 signatureHash)
        internal
        pure
        returns (bytes32)
    {
        bytes memory fields = abi.encode(
            reading.meterId, reading.seq, reading.timestamp, reading.importWh, reading.exportWh, reading.status
        );
        // Concatenating the fields' words between the tag/chain id and the two hashes gives exactly
        // abi.encode of all ten static values (static words concatenate), without ten values on
        // the stack at once.
        return keccak256(
            bytes.concat(keccak256(bytes.concat(abi.encode(LEAF_TAG_V2, chainId), fields, abi.encode(signedHash, signatureHash))))
        );
    }
}
