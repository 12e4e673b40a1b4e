// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IReadingLedger} from "./interfaces/IReadingLedger.sol";

/// @title ReadingLedger
/// @notice Holds the Merkle roots of anchored reading batches and verifies single readings against them.
contract ReadingLedger is IReadingLedger, AccessControl {
    /// @notice May anchor batches (the gateway's anchoring account).
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    uint256 private _lastBatchId;
    mapping(uint256 batchId => bytes32 root) private _roots;

    /// @param admin Receives the admin and operator roles.
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    /// @inheritdoc IReadingLedger
    function anchor(uint256 batchId, bytes32 root, uint32 count, uint64 fromTimestamp, uint64 toTimestamp)
        external
        onlyRole(OPERATOR_ROLE)
    {
        // Requiring exactly last + 1 makes a re-sent anchor transaction fail instead of anchoring
        // the same readings twice, and makes a missing batch visible.
        uint256 expected = _lastBatchId + 1;
        if (batchId != expected) revert ReadingLedgerUnexpectedBatchId(batchId, expected);
        if (root == bytes32(0)) revert ReadingLedgerZeroRoot(batchId);
        if (count == 0) revert ReadingLedgerEmptyBatch(batchId);
        if (fromTimestamp > toTimestamp) {
            revert ReadingLedgerInvalidTimeRange(batchId, fromTimestamp, toTimestamp);
        }
        _lastBatchId = batchId;
        _roots[batchId] = root;
        emit ReadingBatchAnchored(batchId, root, count, fromTimestamp, toTimestamp);
    }

    /// @inheritdoc IReadingLedger
    function lastBatchId() external view returns (uint256) {
        return _lastBatchId;
    }

    /// @inheritdoc IReadingLedger
    function batchRoot(uint256 batchId) external view returns (bytes32) {
        return _anchoredRoot(batchId);
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
}
