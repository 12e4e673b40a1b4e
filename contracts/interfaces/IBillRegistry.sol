// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IBillRegistry
/// @notice Tariffs on record, each customer's tariff assignments, and one Merkle root per
/// bill-issuing run, so any bill can be proven to be the one the operator issued.
/// @dev A tariff is known by the keccak256 of its file's exact bytes (docs/bills.md); the text is
/// served by the gateway and anyone rebuilds the hash. A customer (a meter owner's account) has an
/// append-only list of assignments with strictly increasing `validFrom`: the tariff in force at t
/// is the assignment with the greatest `validFrom <= t`. Nothing takes effect in the past, so a
/// bill already issued can never be contradicted by a later publication or assignment.
///
/// An issuing run anchors one root over the hashes of all bills it issued, with the billing
/// period and the range of reading batches (of the ReadingLedger) its bills were computed from.
/// Run ids are strictly consecutive (1, 2, 3, ...), so a re-sent anchor transaction fails instead
/// of anchoring twice. Leaves are `keccak256(bytes.concat(keccak256(abi.encode(billHash))))`
/// (`billLeaf`) and inner nodes hash sorted pairs, exactly as OpenZeppelin `MerkleProof` expects,
/// so a proof built off chain verifies here and vice versa. A run costs the same whatever the
/// number of bills in it: about 85,000 gas (two storage slots), 85 gas per bill at 1,000 bills.
interface IBillRegistry {
    /// @notice One issuing run as anchored.
    /// @param root Merkle root over the run's bill leaves (`billLeaf(billHash)`).
    /// @param billCount Number of bills in the run.
    /// @param periodStart First second of the billing period (Unix time, inclusive).
    /// @param periodEnd End of the billing period (Unix time, exclusive).
    /// @param firstReadingBatch First ReadingLedger batch id the run's bills use readings of.
    /// @param lastReadingBatch Last ReadingLedger batch id the run's bills use readings of.
    /// @param anchoredAt Block time of the anchoring transaction.
    struct BillRun {
        bytes32 root;
        uint32 billCount;
        uint64 periodStart;
        uint64 periodEnd;
        uint64 firstReadingBatch;
        uint64 lastReadingBatch;
        uint64 anchoredAt;
    }

    /// @notice The zero hash names no tariff (`tariffAt` answers it for "no tariff in force").
    error BillRegistryZeroTariffHash();
    /// @notice A tariff with this hash is published already (a version is published once).
    error BillRegistryTariffAlreadyPublished(bytes32 tariffHash, uint64 validFrom);
    /// @notice A tariff or an assignment cannot take effect before the current block time: a bill
    /// already computed could otherwise be contradicted.
    error BillRegistryValidFromInPast(bytes32 tariffHash, uint64 validFrom, uint64 currentTime);
    /// @notice A tariff is assigned to the zero address.
    error BillRegistryZeroCustomer(bytes32 tariffHash);
    /// @notice No tariff with this hash is published.
    error BillRegistryUnknownTariff(bytes32 tariffHash);
    /// @notice An assignment cannot start before its tariff's own `validFrom`.
    error BillRegistryAssignmentBeforeTariff(
        address customer, bytes32 tariffHash, uint64 validFrom, uint64 tariffValidFrom
    );
    /// @notice An assignment must start after the customer's previous assignment.
    error BillRegistryAssignmentNotAfterPrevious(address customer, uint64 validFrom, uint64 previousValidFrom);
    /// @notice The customer has no assignment with this index.
    error BillRegistryUnknownAssignment(address customer, uint256 index);
    /// @notice Run ids must be exactly the last anchored id + 1.
    error BillRegistryUnexpectedRunId(uint64 runId, uint64 expectedRunId);
    /// @notice A run's root cannot be zero.
    error BillRegistryZeroRoot(uint64 runId);
    /// @notice A run must hold at least one bill.
    error BillRegistryZeroBillCount(uint64 runId);
    /// @notice The billing period is empty or inverted (`periodStart >= periodEnd`).
    error BillRegistryInvalidPeriod(uint64 runId, uint64 periodStart, uint64 periodEnd);
    /// @notice Bills are anchored only for a period that is over.
    error BillRegistryPeriodNotOver(uint64 runId, uint64 periodEnd, uint64 currentTime);
    /// @notice The reading batch range is not `1 <= firstReadingBatch <= lastReadingBatch`.
    error BillRegistryInvalidReadingBatches(uint64 runId, uint64 firstReadingBatch, uint64 lastReadingBatch);
    /// @notice The run names a reading batch the ReadingLedger has not anchored.
    error BillRegistryReadingBatchNotAnchored(uint64 runId, uint64 lastReadingBatch, uint256 lastAnchoredBatch);
    /// @notice No run with this id is anchored.
    error BillRegistryUnknownRun(uint64 runId);

    /// @notice A tariff version was published.
    /// @param tariffHash keccak256 of the tariff file's exact bytes.
    /// @param validFrom From when the tariff may be in force (Unix time).
    event TariffPublished(bytes32 indexed tariffHash, uint64 validFrom);
    /// @notice A customer was assigned a tariff from `validFrom` on.
    /// @param customer The customer's account (the owner of their meters in the MeterRegistry).
    /// @param tariffHash The tariff in force for the customer from `validFrom` on.
    /// @param validFrom From when the assignment is in force (Unix time).
    event TariffAssigned(address indexed customer, bytes32 indexed tariffHash, uint64 validFrom);
    /// @notice An issuing run's bills were anchored.
    /// @param runId The run id (last + 1).
    /// @param root Merkle root over the run's bill leaves.
    /// @param billCount Number of bills in the run.
    /// @param periodStart First second of the billing period (inclusive).
    /// @param periodEnd End of the billing period (exclusive).
    /// @param firstReadingBatch First reading batch the run's bills use.
    /// @param lastReadingBatch Last reading batch the run's bills use.
    event BillsAnchored(
        uint64 indexed runId,
        bytes32 root,
        uint32 billCount,
        uint64 periodStart,
        uint64 periodEnd,
        uint64 firstReadingBatch,
        uint64 lastReadingBatch
    );

    /// @notice Publishes a tariff version, usable from `validFrom` (not in the past). Tariff role only.
    function publishTariff(bytes32 tariffHash, uint64 validFrom) external;

    /// @notice Puts a published tariff in force for `customer` from `validFrom` on: not in the
    /// past, not before the tariff's own `validFrom`, after the customer's previous assignment.
    /// Tariff role only.
    function assignTariff(address customer, bytes32 tariffHash, uint64 validFrom) external;

    /// @notice Anchors the root of the next issuing run. Operator role only.
    /// @dev `runId` must be `runCount() + 1`; the period must be over (`periodEnd <= block time`);
    /// the reading batches must be anchored in the ReadingLedger already. A run is stored in two
    /// slots, times in 48 bits and batch ids in 40: past those (a block time after the year
    /// 8.9 million, a trillionth batch) it reverts with `SafeCastOverflowedUintDowncast` rather
    /// than store a truncated value.
    function anchorBills(
        uint64 runId,
        bytes32 root,
        uint32 billCount,
        uint64 periodStart,
        uint64 periodEnd,
        uint64 firstReadingBatch,
        uint64 lastReadingBatch
    ) external;

    /// @notice The ReadingLedger whose batches the runs name.
    function readingLedger() external view returns (address);

    /// @notice A published tariff's `validFrom` and the block time it was published at; zeros
    /// when no tariff with this hash is published.
    function tariff(bytes32 tariffHash) external view returns (uint64 validFrom, uint64 publishedAt);

    /// @notice How many tariff assignments the customer has had.
    function assignmentCount(address customer) external view returns (uint256);

    /// @notice One of the customer's assignments, by index (0 = first, ordered by `validFrom`);
    /// reverts with `BillRegistryUnknownAssignment` past the last one.
    function assignment(address customer, uint256 index)
        external
        view
        returns (bytes32 tariffHash, uint64 validFrom);

    /// @notice The tariff in force for the customer at `time` (the assignment with the greatest
    /// `validFrom <= time`); zero when none is.
    function tariffAt(address customer, uint64 time) external view returns (bytes32);

    /// @notice The id of the last anchored run (0 before the first).
    function runCount() external view returns (uint64);

    /// @notice An anchored run; reverts with `BillRegistryUnknownRun` if it is not anchored.
    function run(uint64 runId) external view returns (BillRun memory);

    /// @notice The Merkle leaf of a bill: `keccak256(bytes.concat(keccak256(abi.encode(billHash))))`.
    function billLeaf(bytes32 billHash) external pure returns (bytes32);

    /// @notice Whether the bill with `billHash` is in anchored run `runId`, given its Merkle
    /// `proof`; false for a run that is not anchored.
    /// @dev The leaf is computed here from the bill hash, so an inner node of the tree never
    /// passes as a bill.
    function verifyBill(uint64 runId, bytes32 billHash, bytes32[] calldata proof)
        external
        view
        returns (bool);
}
