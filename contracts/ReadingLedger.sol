// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {P256} from "@openzeppelin/contracts/utils/cryptography/P256.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IMeterRegistry} from "./interfaces/IMeterRegistry.sol";
import {IReadingLedger} from "./interfaces/IReadingLedger.sol";
import {Reading, ReadingLeaf} from "./libraries/ReadingLeaf.sol";

/// @title ReadingLedger
/// @notice Holds the Merkle roots of anchored reading batches, verifies single readings against
/// them, and lets anyone prove an anchored reading's signature bad.
contract ReadingLedger is IReadingLedger, AccessControl {
    /// @notice May anchor batches (the gateway's anchoring account).
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    uint8 private constant _ALGORITHM_P256 = 0;
    uint8 private constant _ALGORITHM_SECP256K1 = 2;
    uint256 private constant _SIGNATURE_LENGTH = 64;
    uint256 private constant _CANONICAL_LENGTH = 256;
    uint256 private constant _SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    /// @inheritdoc IReadingLedger
    address public immutable meterRegistry;
    /// @inheritdoc IReadingLedger
    uint64 public immutable challengePeriod;

    // Batches are grouped six by six (batch b in group (b - 1) / 6 at position (b - 1) % 6), and
    // their anchoring times (uint32 seconds, enough until 2106) kept for the challenge period:
    // - `_head`: bits 0..63 the last batch id, bits 64 + 32 * p the time of position p of the
    //   last batch's group: one slot that anchoring rewrites anyway (5,000 gas);
    // - `_anchoredAt[g]`: the six times of an earlier group g at bits 32 * p, written once, when
    //   the next group starts (22,100 gas every sixth batch).
    // So the times cost about 3,700 gas a batch, under 4 gas a reading in a batch of 1,000,
    // rather than the 22,100 of a slot of their own.
    uint256 private constant _GROUP = 6;
    uint256 private _head;
    mapping(uint256 batchId => bytes32 root) private _roots;
    mapping(uint256 group => uint256 packedTimes) private _anchoredAt;
    // Written only by a fraud proof: anchoring pays nothing for it.
    mapping(uint256 batchId => bool bad) private _provenBad;

    /// @param admin Receives the admin and operator roles.
    /// @param registry The MeterRegistry holding the meters' key history.
    /// @param challengePeriod_ Seconds after anchoring before a batch may be used for settlement.
    constructor(address admin, address registry, uint64 challengePeriod_) {
        if (challengePeriod_ == 0) revert ReadingLedgerInvalidChallengePeriod(challengePeriod_);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
        meterRegistry = registry;
        challengePeriod = challengePeriod_;
    }

    /// @inheritdoc IReadingLedger
    function anchor(uint256 batchId, bytes32 root, uint32 count, uint64 fromTimestamp, uint64 toTimestamp)
        external
        onlyRole(OPERATOR_ROLE)
    {
        // Requiring exactly last + 1 makes a re-sent anchor transaction fail instead of anchoring
        // the same readings twice, and makes a missing batch visible.
        uint256 head = _head;
        uint256 expected = uint64(head) + 1;
        if (batchId != expected) revert ReadingLedgerUnexpectedBatchId(batchId, expected);
        if (root == bytes32(0)) revert ReadingLedgerZeroRoot(batchId);
        if (count == 0) revert ReadingLedgerEmptyBatch(batchId);
        if (fromTimestamp > toTimestamp) {
            revert ReadingLedgerInvalidTimeRange(batchId, fromTimestamp, toTimestamp);
        }
        // SafeCast: after 2106 anchoring reverts rather than record a wrapped time.
        uint256 time = SafeCast.toUint32(block.timestamp);
        uint256 position = (batchId - 1) % _GROUP;
        if (position == 0) {
            // A new group: the finished one's times move to their own slot.
            if (batchId > 1) _anchoredAt[(batchId - 1) / _GROUP - 1] = head >> 64;
            head = 0;
        }
        // This position's 32 bits are zero: it has not been anchored before.
        _head = ((head >> 64) << 64) | (time << (64 + 32 * position)) | batchId;
        _roots[batchId] = root;
        emit ReadingBatchAnchored(batchId, root, count, fromTimestamp, toTimestamp);
    }

    /// @inheritdoc IReadingLedger
    function proveBadReading(
        uint256 batchId,
        Reading calldata reading,
        bytes calldata signedBytes,
        bytes calldata signature,
        bytes32[] calldata proof
    ) external returns (BadReadingReason reason) {
        bytes32 root = _anchoredRoot(batchId);
        if (_provenBad[batchId]) revert ReadingLedgerBatchAlreadyProvenBad(batchId);
        bytes32 leaf = ReadingLeaf.hash(reading, block.chainid, keccak256(signedBytes), keccak256(signature));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) {
            revert ReadingLedgerReadingNotInBatch(batchId, reading.meterId, reading.seq);
        }
        reason = _badReadingReason(reading, signedBytes, signature);
        if (reason == BadReadingReason.None) revert ReadingLedgerReadingValid(batchId, reading.meterId, reading.seq);
        // Written after every check, and a new slot costs 22,100 gas: a prover who starves the
        // registry call or a precompile of gas (so that it fails and a genuine signature looks
        // bad) is left with at most 1/64 of it here, too little to mark anything.
        _provenBad[batchId] = true;
        emit ReadingBatchProvenBad(batchId, reading.meterId, reading.seq, msg.sender, reason);
    }

    /// @inheritdoc IReadingLedger
    function lastBatchId() external view returns (uint256) {
        return uint64(_head);
    }

    /// @inheritdoc IReadingLedger
    function batchRoot(uint256 batchId) external view returns (bytes32) {
        return _anchoredRoot(batchId);
    }

    /// @inheritdoc IReadingLedger
    function batchStatus(uint256 batchId) external view returns (BatchStatus memory) {
        _anchoredRoot(batchId);
        uint256 head = _head;
        uint256 group = (batchId - 1) / _GROUP;
        uint256 position = (batchId - 1) % _GROUP;
        uint64 anchoredAt = group == (uint64(head) - 1) / _GROUP
            ? uint32(head >> (64 + 32 * position))
            : uint32(_anchoredAt[group] >> (32 * position));
        return BatchStatus({
            anchoredAt: anchoredAt,
            challengeEndsAt: anchoredAt + challengePeriod,
            provenBad: _provenBad[batchId]
        });
    }

    /// @inheritdoc IReadingLedger
    function verifyReading(uint256 batchId, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        return MerkleProof.verifyCalldata(proof, _anchoredRoot(batchId), leaf);
    }

    function _anchoredRoot(uint256 batchId) private view returns (bytes32 root) {
        root = _roots[batchId];
        if (root == bytes32(0)) revert ReadingLedgerUnknownBatch(batchId);
    }

    /// @dev Why the anchored reading is bad, or None if its signature verifies.
    function _badReadingReason(Reading calldata reading, bytes calldata signedBytes, bytes calldata signature)
        private
        view
        returns (BadReadingReason)
    {
        // Native signed bytes must be the canonical bytes of the leaf's fields: otherwise a genuine
        // signature of another reading (another value, another chain) would vouch for these fields.
        if (signedBytes.length == _CANONICAL_LENGTH && bytes32(signedBytes[:32]) == ReadingLeaf.DOMAIN_TAG) {
            if (keccak256(signedBytes) != keccak256(ReadingLeaf.canonical(reading, block.chainid))) {
                return BadReadingReason.SignedBytesMismatch;
            }
        }
        (bool found, IMeterRegistry.KeyEpoch memory key) = _keyAt(reading.meterId, reading.timestamp);
        if (!found) return BadReadingReason.NoKeyAtTime;
        if (key.algorithm != _ALGORITHM_P256 && key.algorithm != _ALGORITHM_SECP256K1) {
            revert ReadingLedgerKeyNotCheckable(reading.meterId, key.algorithm);
        }
        if (signature.length != _SIGNATURE_LENGTH) {
            // The gateway stores an ECDSA signature as r || s, or as r || s and the digest's name
            // for an OCMF record hashed otherwise (not checkable here: the EVM has SHA-256 only).
            // Any other form was never a meter's: a forgery cannot hide behind it.
            if (signature.length == _SIGNATURE_LENGTH + 6) {
                bytes6 digestName = bytes6(signature[_SIGNATURE_LENGTH:]);
                if (digestName == "SHA384" || digestName == "SHA512") {
                    revert ReadingLedgerSignatureNotCheckable(reading.meterId, reading.seq, signature.length);
                }
            }
            return BadReadingReason.MalformedSignature;
        }
        bytes32 digest = sha256(signedBytes);
        bytes32 r = bytes32(signature[:32]);
        bytes32 s = bytes32(signature[32:]);
        bytes memory publicKey = key.publicKey;
        bool valid = key.algorithm == _ALGORITHM_P256
            ? _verifyP256(digest, r, s, publicKey)
            : _verifySecp256k1(digest, r, s, publicKey);
        return valid ? BadReadingReason.None : BadReadingReason.BadSignature;
    }

    /// @dev The meter's key at `timestamp`, or found = false when the registry says there is none
    /// (no key then, or no such meter). Any other failure of the call (running out of gas above
    /// all) is re-raised: a prover sending too little gas must not get a good batch marked bad.
    function _keyAt(bytes32 meterId, uint64 timestamp)
        private
        view
        returns (bool found, IMeterRegistry.KeyEpoch memory key)
    {
        // The epoch number keyAt also returns is not needed: the key itself is.
        // slither-disable-next-line unused-return
        try IMeterRegistry(meterRegistry).keyAt(meterId, timestamp) returns (
            uint256, IMeterRegistry.KeyEpoch memory epochKey
        ) {
            return (true, epochKey);
        } catch (bytes memory failure) {
            bytes4 selector = failure.length >= 4 ? bytes4(failure) : bytes4(0);
            if (
                selector != IMeterRegistry.MeterRegistryNoKeyAt.selector
                    && selector != IMeterRegistry.MeterRegistryUnknownMeter.selector
            ) {
                // slither-disable-next-line assembly
                assembly ("memory-safe") {
                    revert(add(failure, 0x20), mload(failure))
                }
            }
            return (false, key);
        }
    }

    /// @dev P-256 over `digest`. ECDSA's (r, n - s) verifies whenever (r, s) does and meters need
    /// not normalise s, but OpenZeppelin's P256 accepts the lower half only: s is brought there.
    function _verifyP256(bytes32 digest, bytes32 r, bytes32 s, bytes memory publicKey) private view returns (bool) {
        (bytes32 qx, bytes32 qy) = _point(publicKey);
        uint256 sValue = uint256(s);
        if (sValue > P256.N / 2 && sValue < P256.N) s = bytes32(P256.N - sValue);
        return P256.verify(digest, r, s, qx, qy);
    }

    /// @dev secp256k1 over `digest`: the 64-byte signature carries no recovery id, so both are
    /// tried against the address of the registered key (s brought to the lower half first, as
    /// `ECDSA.tryRecover` requires).
    function _verifySecp256k1(bytes32 digest, bytes32 r, bytes32 s, bytes memory publicKey)
        private
        pure
        returns (bool)
    {
        (bytes32 qx, bytes32 qy) = _point(publicKey);
        address expected = address(uint160(uint256(keccak256(abi.encodePacked(qx, qy)))));
        uint256 sValue = uint256(s);
        if (sValue > _SECP256K1_N / 2 && sValue < _SECP256K1_N) s = bytes32(_SECP256K1_N - sValue);
        for (uint8 v = 27; v <= 28; ++v) {
            // The third value only details a RecoverError, and the error itself is checked.
            // slither-disable-next-line unused-return
            (address recovered, ECDSA.RecoverError error_,) = ECDSA.tryRecover(digest, v, r, s);
            if (error_ == ECDSA.RecoverError.NoError && recovered == expected) return true;
        }
        return false;
    }

    /// @dev x and y of a SEC1 uncompressed point (0x04 || x || y; the registry checked its form).
    function _point(bytes memory publicKey) private pure returns (bytes32 x, bytes32 y) {
        // slither-disable-next-line assembly
        assembly ("memory-safe") {
            x := mload(add(publicKey, 33))
            y := mload(add(publicKey, 65))
        }
    }
}
