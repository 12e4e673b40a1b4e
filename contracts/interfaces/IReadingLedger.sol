// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IReadingLedger
/// @notice Merkle roots of batches of signed meter readings, so any single reading is provable.
/// @dev Leaves are `keccak256(bytes.concat(keccak256(abi.encode(...reading fields))))` and inner
/// nodes hash sorted pairs, exactly as OpenZeppelin `MerkleProof` expects. Batch ids are strictly
/// consecutive (1, 2, 3, ...) so a gap or a replay of an anchor is impossible by construction.
/// Only the root of a batch is kept in storage (one slot per batch: anchoring 1,000 readings costs
/// about 52 gas each); its count and time range are in the `ReadingBatchAnchored` event, where
/// auditors read them, and the anchoring time is that event's block time.
interface IReadingLedger {
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

    /// @notice A batch of readings was anchored.
    /// @param batchId The batch id (last + 1).
    /// @param root Merkle root over the batch's reading leaves.
    /// @param count Number of readings in the batch.
    /// @param fromTimestamp Earliest reading time in the batch.
    /// @param toTimestamp Latest reading time in the batch.
    event ReadingBatchAnchored(
        uint256 indexed batchId, bytes32 root, uint32 count, uint64 fromTimestamp, uint64 toTimestamp
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
}
