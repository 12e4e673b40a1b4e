// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Reading} from "../libraries/ReadingLeaf.sol";

/// @title IReadingLedger
/// @notice Merkle roots of batches of signed meter readings, so any single reading is provable.
/// @dev Leaves are version-2 reading leaves (contracts/libraries/ReadingLeaf.sol: the fields, the
/// hash of the bytes the meter signed and the hash of its signature, hashed twice) and inner nodes
/// hash sorted pairs, exactly as OpenZeppelin `MerkleProof` expects. Batch ids are strictly
/// consecutive (1, 2, 3, ...) so a gap or a replay of an anchor is impossible by construction.
/// Only the root of a batch is kept in storage (one slot per batch: anchoring 1,000 readings costs
/// about 52 gas each); its count and time range are in the `ReadingBatchAnchored` event, where
/// auditors read them, and the anchoring time is that event's block time.
///
/// Fraud proofs: anyone may show, with `proveBadReading`, that an anchored reading's signature
/// does not verify under the key the MeterRegistry held for its meter at its time; its batch is
/// then proven bad for good. A batch's readings are fit for settlement only once its challenge
/// period (set at deployment) has passed since its anchoring, and never once proven bad
/// (`batchStatus`). ECDSA keys are checked on chain (P-256 with OpenZeppelin `P256`, which runs in
/// Solidity where the chain has no RIP-7212 precompile; secp256k1 with `ecrecover`); Ed25519 keys
/// cannot be (no precompile, and a Solidity Ed25519 costs millions of gas), so their readings rest
/// on the off-chain audit alone.
interface IReadingLedger {
    /// @notice Why a batch was proven bad.
    /// @param BadSignature The signature does not verify under the key valid at the reading's time.
    /// @param NoKeyAtTime The meter had no valid key at the reading's time (or is not registered).
    /// @param SignedBytesMismatch The signed bytes are a native reading other than the leaf's
    /// fields (another reading's genuine signature passed off for these fields).
    /// @param MalformedSignature An ECDSA signature in no form the gateway stores: neither r || s
    /// (64 bytes) nor r || s followed by "SHA384" or "SHA512" (an OCMF record's other digests),
    /// so no meter signed it.
    enum BadReadingReason {
        None,
        BadSignature,
        NoKeyAtTime,
        SignedBytesMismatch,
        MalformedSignature
    }

    /// @notice What settlement needs to know of a batch.
    /// @param anchoredAt Block time of the anchoring.
    /// @param challengeEndsAt `anchoredAt + challengePeriod`: the batch's readings may settle from then on.
    /// @param provenBad Whether a fraud proof showed one of its readings bad.
    struct BatchStatus {
        uint64 anchoredAt;
        uint64 challengeEndsAt;
        bool provenBad;
    }


    /// @notice Batch ids must be exactly the last anchored id + 1.
    error ReadingLedgerUnexpectedBatchId(uint256 batchId, uint256 expectedBatchId);
    /// @notice A batch root cannot be zero.
    error ReadingLedgerZeroRoot(uint256 batchId);
    /// @notice A batch must hold at least one reading.
    error ReadingLedgerEmptyBatch(uint256 batchId);
    /// @notice The batch's time range is inverted.
    error ReadingLedgerInvalidTimeRange(uint256 batchId, uint64 fromTimestamp, uint64 toTimestamp);
    /// @notice No batch with this id has been anchored.
    error ReadingLedgerUnknownBatch(uint256 batchId);
    /// @notice The challenge period must be non-zero (zero would let settlement use a batch before
    /// anyone could look at it).
    error ReadingLedgerInvalidChallengePeriod(uint64 challengePeriod);
    /// @notice The reading, with these signed-bytes and signature hashes, is not in the batch.
    error ReadingLedgerReadingNotInBatch(uint256 batchId, bytes32 meterId, uint64 seq);
    /// @notice The batch is proven bad already; a second proof would change nothing.
    error ReadingLedgerBatchAlreadyProvenBad(uint256 batchId);
    /// @notice The reading's signature verifies under the key valid at its time: nothing to prove.
    error ReadingLedgerReadingValid(uint256 batchId, bytes32 meterId, uint64 seq);
    /// @notice The meter's key at the reading's time is Ed25519, which cannot be checked on chain.
    error ReadingLedgerKeyNotCheckable(bytes32 meterId, uint8 algorithm);
    /// @notice An ECDSA signature over a SHA-384 or SHA-512 digest (an OCMF record's, stored as
    /// r || s || "SHA384" or "SHA512") cannot be checked on chain.
    error ReadingLedgerSignatureNotCheckable(bytes32 meterId, uint64 seq, uint256 length);

    /// @notice A batch of readings was anchored.
    /// @param batchId The batch id (last + 1).
    /// @param root Merkle root over the batch's reading leaves.
    /// @param count Number of readings in the batch.
    /// @param fromTimestamp Earliest reading time in the batch.
    /// @param toTimestamp Latest reading time in the batch.
    event ReadingBatchAnchored(
        uint256 indexed batchId, bytes32 root, uint32 count, uint64 fromTimestamp, uint64 toTimestamp
    );

    /// @notice An anchored reading was shown bad: its batch is proven bad for good.
    /// @param batchId The batch.
    /// @param meterId The reading's meter.
    /// @param seq The reading's sequence number.
    /// @param prover The account that sent the proof.
    /// @param reason Why the reading is bad.
    event ReadingBatchProvenBad(
        uint256 indexed batchId, bytes32 indexed meterId, uint64 seq, address indexed prover, BadReadingReason reason
    );

    /// @notice Anchors the next batch. Operator role only.
    function anchor(uint256 batchId, bytes32 root, uint32 count, uint64 fromTimestamp, uint64 toTimestamp)
        external;

    /// @notice The id of the last anchored batch (0 before the first).
    function lastBatchId() external view returns (uint256);

    /// @notice The Merkle root of an anchored batch; reverts with `ReadingLedgerUnknownBatch` if
    /// the batch is not anchored.
    function batchRoot(uint256 batchId) external view returns (bytes32);

    /// @notice Whether `leaf` is in anchored batch `batchId`, given its Merkle `proof`.
    /// Reverts with `ReadingLedgerUnknownBatch` if the batch is not anchored.
    /// @dev The caller must compute `leaf` from the reading itself (double-hashed, see above): an
    /// inner node of the tree with a shortened proof also returns true. Contracts that settle on
    /// readings therefore rebuild the leaf on chain and never take a leaf hash as input.
    function verifyReading(uint256 batchId, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool);

    /// @notice The MeterRegistry whose key history fraud proofs are checked against.
    function meterRegistry() external view returns (address);

    /// @notice Seconds after its anchoring before a batch's readings may be used for settlement.
    function challengePeriod() external view returns (uint64);

    /// @notice Anchoring time, end of the challenge period and proven-bad flag of an anchored
    /// batch; reverts with `ReadingLedgerUnknownBatch` if the batch is not anchored.
    function batchStatus(uint256 batchId) external view returns (BatchStatus memory);

    /// @notice Proves an anchored reading bad: anyone may call it. The version-2 leaf is rebuilt
    /// from `reading`, `keccak256(signedBytes)` and `keccak256(signature)` and must be in batch
    /// `batchId` under `proof`. The reading is bad, and the batch marked so, when its signed bytes
    /// are a native reading other than its fields, when its meter had no valid key at its time, or
    /// when `signature` does not verify over `sha256(signedBytes)` under that key.
    /// @dev For a native reading `signedBytes` are its 256 canonical bytes; for an OCMF reading the
    /// record's payload, whose values are not compared with the fields here (JSON on chain): the
    /// off-chain audit does that. Reverts with `ReadingLedgerReadingValid` if the signature
    /// verifies, `ReadingLedgerKeyNotCheckable` for an Ed25519 key and
    /// `ReadingLedgerSignatureNotCheckable` for an ECDSA signature over SHA-384 or SHA-512; an
    /// ECDSA signature in any other form than r || s is itself the proof (`MalformedSignature`).
    /// @param signature ECDSA: r || s (64 bytes, s in either half); Ed25519: the 64 bytes.
    /// @return reason Why the reading is bad.
    function proveBadReading(
        uint256 batchId,
        Reading calldata reading,
        bytes calldata signedBytes,
        bytes calldata signature,
        bytes32[] calldata proof
    ) external returns (BadReadingReason reason);
}
