// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IComplaintRegistry} from "./interfaces/IComplaintRegistry.sol";

/// @title ComplaintRegistry
/// @notice Customers' complaints and the operator's answers on the chain's clock. See
/// IComplaintRegistry for the rules.
contract ComplaintRegistry is IComplaintRegistry, AccessControl, EIP712, Nonces {
    /// @notice May record the operator's steps (respond, assign, plan, resolve).
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice EIP-712 type of a relayed opening.
    bytes32 public constant OPEN_TYPEHASH = keccak256(
        "Open(uint8 kind,bytes32 subjectRef,bytes32 textHash,address customer,uint256 nonce,uint256 deadline)"
    );
    /// @notice EIP-712 type of a relayed rating.
    bytes32 public constant RATE_TYPEHASH =
        keccak256("Rate(uint256 complaintId,uint8 rating,address customer,uint256 nonce,uint256 deadline)");
    /// @notice EIP-712 type of a relayed reopening.
    bytes32 public constant REOPEN_TYPEHASH =
        keccak256("Reopen(uint256 complaintId,bytes32 textHash,address customer,uint256 nonce,uint256 deadline)");

    uint8 private constant _MAX_RATING = 5;

    /// @dev Four slots: who and where in one (31 bytes), the subject, the round's step times
    /// (uint48 as OpenZeppelin's `Time`), the handler. Texts are only in the events: the gateway
    /// keeps them and their hashes are what anyone checks, so storing them would cost gas for
    /// nothing a contract reads.
    struct StoredComplaint {
        address customer;
        SubjectKind kind;
        Status status;
        uint16 round;
        uint8 rating;
        uint48 roundStartedAt;
        bytes32 subjectRef;
        uint48 respondedAt;
        uint48 assignedAt;
        uint48 plannedAt;
        uint48 resolvedAt;
        bytes32 handler;
    }

    uint256 private _complaintCount;
    mapping(uint256 complaintId => StoredComplaint) private _complaints;

    /// @param admin Receives the admin and operator roles.
    constructor(address admin) EIP712("ComplaintRegistry", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    /// @inheritdoc IComplaintRegistry
    function open(uint8 kind, bytes32 subjectRef, bytes32 textHash) external returns (uint256 complaintId) {
        return _open(kind, subjectRef, textHash, msg.sender);
    }

    /// @inheritdoc IComplaintRegistry
    function openBySig(
        uint8 kind,
        bytes32 subjectRef,
        bytes32 textHash,
        address customer,
        uint256 deadline,
        bytes calldata signature
    ) external returns (uint256 complaintId) {
        bytes32 structHash = keccak256(
            abi.encode(OPEN_TYPEHASH, kind, subjectRef, textHash, customer, _useNonce(customer), deadline)
        );
        _checkSignature(customer, structHash, deadline, signature);
        return _open(kind, subjectRef, textHash, customer);
    }

    /// @inheritdoc IComplaintRegistry
    function respond(uint256 complaintId, bytes32 textHash) external onlyRole(OPERATOR_ROLE) {
        StoredComplaint storage stored = _inStatus(complaintId, Status.Open, Status.Responded);
        uint48 at = _now();
        stored.status = Status.Responded;
        stored.respondedAt = at;
        emit ComplaintResponded(complaintId, stored.round, textHash, at);
    }

    /// @inheritdoc IComplaintRegistry
    function assign(uint256 complaintId, bytes32 handler, bytes32 textHash) external onlyRole(OPERATOR_ROLE) {
        StoredComplaint storage stored = _inStatus(complaintId, Status.Responded, Status.Assigned);
        // The zero id would read as "nobody assigned", the very thing the step records.
        if (handler == bytes32(0)) revert ComplaintRegistryZeroHandler(complaintId);
        uint48 at = _now();
        stored.status = Status.Assigned;
        stored.assignedAt = at;
        stored.handler = handler;
        emit ComplaintAssigned(complaintId, stored.round, handler, textHash, at);
    }

    /// @inheritdoc IComplaintRegistry
    function plan(uint256 complaintId, bytes32 textHash) external onlyRole(OPERATOR_ROLE) {
        StoredComplaint storage stored = _inStatus(complaintId, Status.Assigned, Status.Planned);
        uint48 at = _now();
        stored.status = Status.Planned;
        stored.plannedAt = at;
        emit ComplaintPlanned(complaintId, stored.round, textHash, at);
    }

    /// @inheritdoc IComplaintRegistry
    function resolve(uint256 complaintId, bytes32 textHash) external onlyRole(OPERATOR_ROLE) {
        StoredComplaint storage stored = _inStatus(complaintId, Status.Planned, Status.Resolved);
        uint48 at = _now();
        stored.status = Status.Resolved;
        stored.resolvedAt = at;
        emit ComplaintResolved(complaintId, stored.round, textHash, at);
    }

    /// @inheritdoc IComplaintRegistry
    function rate(uint256 complaintId, uint8 rating) external {
        _rate(complaintId, rating, msg.sender);
    }

    /// @inheritdoc IComplaintRegistry
    function rateBySig(uint256 complaintId, uint8 rating, address customer, uint256 deadline, bytes calldata signature)
        external
    {
        bytes32 structHash =
            keccak256(abi.encode(RATE_TYPEHASH, complaintId, rating, customer, _useNonce(customer), deadline));
        _checkSignature(customer, structHash, deadline, signature);
        _rate(complaintId, rating, customer);
    }

    /// @inheritdoc IComplaintRegistry
    function reopen(uint256 complaintId, bytes32 textHash) external {
        _reopen(complaintId, textHash, msg.sender);
    }

    /// @inheritdoc IComplaintRegistry
    function reopenBySig(
        uint256 complaintId,
        bytes32 textHash,
        address customer,
        uint256 deadline,
        bytes calldata signature
    ) external {
        bytes32 structHash =
            keccak256(abi.encode(REOPEN_TYPEHASH, complaintId, textHash, customer, _useNonce(customer), deadline));
        _checkSignature(customer, structHash, deadline, signature);
        _reopen(complaintId, textHash, customer);
    }

    /// @inheritdoc IComplaintRegistry
    function complaintCount() external view returns (uint256) {
        return _complaintCount;
    }

    /// @inheritdoc IComplaintRegistry
    function complaint(uint256 complaintId) external view returns (Complaint memory) {
        StoredComplaint storage stored = _known(complaintId);
        return Complaint({
            customer: stored.customer,
            kind: stored.kind,
            subjectRef: stored.subjectRef,
            status: stored.status,
            round: stored.round,
            rating: stored.rating,
            roundStartedAt: stored.roundStartedAt,
            respondedAt: stored.respondedAt,
            assignedAt: stored.assignedAt,
            plannedAt: stored.plannedAt,
            resolvedAt: stored.resolvedAt,
            handler: stored.handler
        });
    }

    function _open(uint8 kind, bytes32 subjectRef, bytes32 textHash, address customer)
        private
        returns (uint256 complaintId)
    {
        // Checked here rather than left to the ABI decoder, which refuses an enum out of range
        // with no error data at all.
        if (kind > uint8(type(SubjectKind).max)) revert ComplaintRegistryInvalidSubjectKind(kind);
        complaintId = ++_complaintCount;
        uint48 at = _now();
        StoredComplaint storage stored = _complaints[complaintId];
        stored.customer = customer;
        stored.kind = SubjectKind(kind);
        stored.status = Status.Open;
        stored.round = 1;
        stored.roundStartedAt = at;
        stored.subjectRef = subjectRef;
        emit ComplaintOpened(complaintId, customer, SubjectKind(kind), subjectRef, textHash, at);
    }

    function _rate(uint256 complaintId, uint8 rating, address customer) private {
        StoredComplaint storage stored = _ownInStatus(complaintId, customer, Status.Resolved, Status.Rated);
        if (rating == 0 || rating > _MAX_RATING) revert ComplaintRegistryInvalidRating(complaintId, rating);
        uint48 at = _now();
        stored.status = Status.Rated;
        stored.rating = rating;
        emit ComplaintRated(complaintId, stored.round, rating, at);
    }

    function _reopen(uint256 complaintId, bytes32 textHash, address customer) private {
        StoredComplaint storage stored = _known(complaintId);
        if (stored.customer != customer) revert ComplaintRegistryNotCustomer(complaintId, customer);
        // Only an answered complaint is reopened: one still in progress is still the operator's.
        if (stored.status != Status.Resolved && stored.status != Status.Rated) {
            revert ComplaintRegistryStepOutOfOrder(complaintId, Status.Open, stored.status);
        }
        uint48 at = _now();
        uint16 round = stored.round + 1;
        stored.status = Status.Open;
        stored.round = round;
        stored.roundStartedAt = at;
        // A new round's clocks start from nothing; the rating stays until the next one.
        stored.respondedAt = 0;
        stored.assignedAt = 0;
        stored.plannedAt = 0;
        stored.resolvedAt = 0;
        emit ComplaintReopened(complaintId, round, textHash, at);
    }

    function _checkSignature(address customer, bytes32 structHash, uint256 deadline, bytes calldata signature)
        private
        view
    {
        // slither-disable-next-line timestamp
        if (block.timestamp > deadline) revert ComplaintRegistrySignatureExpired(deadline, block.timestamp);
        // ECDSA, as EnergyMarket (SignatureChecker's OpenZeppelin 5.4 build needs Cancun's mcopy):
        // customers are externally owned accounts. tryRecover refuses high-s and malformed
        // signatures; the nonce in the signed struct makes each signature usable once.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError error_,) = ECDSA.tryRecover(_hashTypedDataV4(structHash), signature);
        if (error_ != ECDSA.RecoverError.NoError || recovered != customer) {
            revert ComplaintRegistryInvalidSignature(customer);
        }
    }

    function _ownInStatus(uint256 complaintId, address customer, Status expected, Status step)
        private
        view
        returns (StoredComplaint storage stored)
    {
        stored = _known(complaintId);
        if (stored.customer != customer) revert ComplaintRegistryNotCustomer(complaintId, customer);
        if (stored.status != expected) revert ComplaintRegistryStepOutOfOrder(complaintId, step, stored.status);
    }

    function _inStatus(uint256 complaintId, Status expected, Status step)
        private
        view
        returns (StoredComplaint storage stored)
    {
        stored = _known(complaintId);
        if (stored.status != expected) revert ComplaintRegistryStepOutOfOrder(complaintId, step, stored.status);
    }

    function _known(uint256 complaintId) private view returns (StoredComplaint storage) {
        if (complaintId == 0 || complaintId > _complaintCount) revert ComplaintRegistryUnknownComplaint(complaintId);
        return _complaints[complaintId];
    }

    /// @dev The block's time is every step's time: no caller, the gateway included, can choose it.
    function _now() private view returns (uint48) {
        return SafeCast.toUint48(block.timestamp);
    }
}
