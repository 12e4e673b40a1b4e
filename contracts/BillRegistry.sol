// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IBillRegistry} from "./interfaces/IBillRegistry.sol";
import {IReadingLedger} from "./interfaces/IReadingLedger.sol";

/// @title BillRegistry
/// @notice Tariffs on record, customers' tariff assignments and the Merkle roots of bill-issuing runs.
contract BillRegistry is IBillRegistry, AccessControl {
    /// @notice May anchor bill-issuing runs (the gateway's issuing account).
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice May publish tariffs and assign them to customers.
    bytes32 public constant TARIFF_ROLE = keccak256("TARIFF_ROLE");

    /// @dev A run as stored: its root in one slot, everything else in a second one, so anchoring
    /// writes two fresh slots (the gas of a run does not grow with its bills). Times are uint48
    /// as in OpenZeppelin's `Time` (8.9 million years); batch ids are uint40 (a trillion batches,
    /// one transaction each: more than any chain will ever mine for one ledger).
    struct StoredRun {
        bytes32 root;
        uint32 billCount;
        uint48 periodStart;
        uint48 periodEnd;
        uint48 anchoredAt;
        uint40 firstReadingBatch;
        uint40 lastReadingBatch;
    }

    /// @dev One slot per tariff. `publishedAt` is a block time, never 0 for a published tariff.
    struct StoredTariff {
        uint64 validFrom;
        uint64 publishedAt;
    }

    struct Assignment {
        bytes32 tariffHash;
        uint64 validFrom;
    }

    IReadingLedger private immutable _readingLedger;

    /// @dev runCount() + 1. Starts at 1 so that every run's write to it is non-zero to non-zero
    /// (5,000 gas rather than 22,100 for the first run's zero to non-zero).
    uint64 private _nextRunId;
    mapping(uint64 runId => StoredRun run) private _runs;
    mapping(bytes32 tariffHash => StoredTariff tariff) private _tariffs;
    mapping(address customer => Assignment[] assignments) private _assignments;

    /// @param admin Receives the admin, operator and tariff roles.
    /// @param ledger The ReadingLedger whose batches the runs name.
    constructor(address admin, address ledger) {
        _readingLedger = IReadingLedger(ledger);
        _nextRunId = 1;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
        _grantRole(TARIFF_ROLE, admin);
    }

    /// @inheritdoc IBillRegistry
    function publishTariff(bytes32 tariffHash, uint64 validFrom) external onlyRole(TARIFF_ROLE) {
        if (tariffHash == bytes32(0)) revert BillRegistryZeroTariffHash();
        StoredTariff storage stored = _tariffs[tariffHash];
        if (stored.publishedAt != 0) revert BillRegistryTariffAlreadyPublished(tariffHash, stored.validFrom);
        if (validFrom < block.timestamp) {
            revert BillRegistryValidFromInPast(tariffHash, validFrom, uint64(block.timestamp));
        }
        stored.validFrom = validFrom;
        stored.publishedAt = uint64(block.timestamp);
        emit TariffPublished(tariffHash, validFrom);
    }

    /// @inheritdoc IBillRegistry
    function assignTariff(address customer, bytes32 tariffHash, uint64 validFrom)
        external
        onlyRole(TARIFF_ROLE)
    {
        if (customer == address(0)) revert BillRegistryZeroCustomer(tariffHash);
        StoredTariff storage published = _tariffs[tariffHash];
        if (published.publishedAt == 0) revert BillRegistryUnknownTariff(tariffHash);
        // A back-dated assignment could change what a bill already issued should have said.
        if (validFrom < block.timestamp) {
            revert BillRegistryValidFromInPast(tariffHash, validFrom, uint64(block.timestamp));
        }
        if (validFrom < published.validFrom) {
            revert BillRegistryAssignmentBeforeTariff(customer, tariffHash, validFrom, published.validFrom);
        }
        uint256 count = _assignments[customer].length;
        // Strictly increasing starts keep the lookup by time unambiguous (binary search in tariffAt).
        if (count != 0) {
            uint64 previousValidFrom = _assignments[customer][count - 1].validFrom;
            if (validFrom <= previousValidFrom) {
                revert BillRegistryAssignmentNotAfterPrevious(customer, validFrom, previousValidFrom);
            }
        }
        _assignments[customer].push(Assignment({tariffHash: tariffHash, validFrom: validFrom}));
        emit TariffAssigned(customer, tariffHash, validFrom);
    }

    /// @inheritdoc IBillRegistry
    function anchorBills(
        uint64 runId,
        bytes32 root,
        uint32 billCount,
        uint64 periodStart,
        uint64 periodEnd,
        uint64 firstReadingBatch,
        uint64 lastReadingBatch
    ) external onlyRole(OPERATOR_ROLE) {
        // Requiring exactly last + 1 makes a re-sent anchor transaction fail instead of anchoring
        // the same run twice, and makes a missing run visible.
        uint64 expected = _nextRunId;
        if (runId != expected) revert BillRegistryUnexpectedRunId(runId, expected);
        if (root == bytes32(0)) revert BillRegistryZeroRoot(runId);
        if (billCount == 0) revert BillRegistryZeroBillCount(runId);
        if (periodStart >= periodEnd) revert BillRegistryInvalidPeriod(runId, periodStart, periodEnd);
        // A bill of a period still running would miss its last readings.
        if (periodEnd > block.timestamp) {
            revert BillRegistryPeriodNotOver(runId, periodEnd, uint64(block.timestamp));
        }
        if (firstReadingBatch == 0 || firstReadingBatch > lastReadingBatch) {
            revert BillRegistryInvalidReadingBatches(runId, firstReadingBatch, lastReadingBatch);
        }
        uint256 lastAnchored = _readingLedger.lastBatchId();
        if (lastReadingBatch > lastAnchored) {
            revert BillRegistryReadingBatchNotAnchored(runId, lastReadingBatch, lastAnchored);
        }
        // periodStart < periodEnd <= block.timestamp, and the block time fits 48 bits (checked);
        // lastReadingBatch (checked) bounds firstReadingBatch.
        uint48 anchoredAt = SafeCast.toUint48(block.timestamp);
        _nextRunId = runId + 1;
        _runs[runId] = StoredRun({
            root: root,
            billCount: billCount,
            periodStart: uint48(periodStart),
            periodEnd: uint48(periodEnd),
            anchoredAt: anchoredAt,
            firstReadingBatch: uint40(firstReadingBatch),
            lastReadingBatch: SafeCast.toUint40(lastReadingBatch)
        });
        emit BillsAnchored(runId, root, billCount, periodStart, periodEnd, firstReadingBatch, lastReadingBatch);
    }

    /// @inheritdoc IBillRegistry
    function readingLedger() external view returns (address) {
        return address(_readingLedger);
    }

    /// @inheritdoc IBillRegistry
    function tariff(bytes32 tariffHash) external view returns (uint64 validFrom, uint64 publishedAt) {
        StoredTariff storage stored = _tariffs[tariffHash];
        return (stored.validFrom, stored.publishedAt);
    }

    /// @inheritdoc IBillRegistry
    function assignmentCount(address customer) external view returns (uint256) {
        return _assignments[customer].length;
    }

    /// @inheritdoc IBillRegistry
    function assignment(address customer, uint256 index)
        external
        view
        returns (bytes32 tariffHash, uint64 validFrom)
    {
        Assignment[] storage assignments = _assignments[customer];
        if (index >= assignments.length) revert BillRegistryUnknownAssignment(customer, index);
        Assignment storage found = assignments[index];
        return (found.tariffHash, found.validFrom);
    }

    /// @inheritdoc IBillRegistry
    function tariffAt(address customer, uint64 time) external view returns (bytes32) {
        Assignment[] storage assignments = _assignments[customer];
        // How many assignments have validFrom <= time, by binary search: O(log n) however long
        // the customer's history grows (validFrom is strictly increasing).
        uint256 low = 0;
        uint256 high = assignments.length;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (assignments[mid].validFrom <= time) low = mid + 1;
            else high = mid;
        }
        return low == 0 ? bytes32(0) : assignments[low - 1].tariffHash;
    }

    /// @inheritdoc IBillRegistry
    function runCount() external view returns (uint64) {
        return _nextRunId - 1;
    }

    /// @inheritdoc IBillRegistry
    function run(uint64 runId) external view returns (BillRun memory) {
        if (!_isAnchored(runId)) revert BillRegistryUnknownRun(runId);
        StoredRun storage stored = _runs[runId];
        return BillRun({
            root: stored.root,
            billCount: stored.billCount,
            periodStart: stored.periodStart,
            periodEnd: stored.periodEnd,
            firstReadingBatch: stored.firstReadingBatch,
            lastReadingBatch: stored.lastReadingBatch,
            anchoredAt: stored.anchoredAt
        });
    }

    /// @inheritdoc IBillRegistry
    function billLeaf(bytes32 billHash) public pure returns (bytes32) {
        // Hashed twice, as OpenZeppelin's standard leaves: a leaf's preimage is 32 bytes, so no
        // 64-byte pair of inner nodes can pass as a bill.
        return keccak256(bytes.concat(keccak256(abi.encode(billHash))));
    }

    /// @inheritdoc IBillRegistry
    function verifyBill(uint64 runId, bytes32 billHash, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        if (!_isAnchored(runId)) return false;
        return MerkleProof.verifyCalldata(proof, _runs[runId].root, billLeaf(billHash));
    }

    /// @dev Run ids are consecutive from 1, so the anchored ones are exactly 1..runCount().
    function _isAnchored(uint64 runId) private view returns (bool) {
        return runId != 0 && runId < _nextRunId;
    }
}
