// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IComplaintRegistry
/// @notice Customers' complaints and the operator's answers, each step stamped with the block's
/// time, so response times are computed from the chain and no one can backdate an answer.
/// @dev A complaint is opened by a customer account (any account: being a customer is not checked
/// against the MeterRegistry, because a complaint may be about an outage or "other" and concern
/// no meter at all) about a subject of one kind (`SubjectKind`) named by a bytes32 reference.
/// Only the keccak256 of each text is on chain; the texts stay with the gateway, which serves
/// them to the parties and auditors, and anyone holding a text can check it against its hash.
///
/// The steps of one round, in this order only:
/// opened (or reopened) -> responded -> assigned (a handler id) -> planned -> resolved,
/// then the customer either rates the resolution (1-5) or reopens the complaint, which starts
/// a new round (`round` + 1) from the reopening time; a rated complaint may still be reopened.
/// The operator's steps need `OPERATOR_ROLE`. The customer's steps are sent by the customer or
/// relayed by anyone with the customer's EIP-712 signature (`...BySig`, per-customer nonces
/// from `nonces(customer)`, a deadline). No function takes a time: every step's time is the
/// block's (`block.timestamp`), carried in the step's event as `at`.
interface IComplaintRegistry {
    /// @notice What a complaint is about; the reference's meaning depends on the kind.
    /// BillLine: keccak256 of the bill id and line number; Reading: keccak256 of the meter id
    /// and sequence number; Trade: the trade id; Outage and Other: any reference the customer
    /// chooses (zero for none). docs/complaints.md gives the exact encodings.
    enum SubjectKind {
        BillLine,
        Reading,
        Trade,
        Outage,
        Other
    }

    /// @notice Where a complaint is in its current round. `None` only for ids never opened.
    enum Status {
        None,
        Open,
        Responded,
        Assigned,
        Planned,
        Resolved,
        Rated
    }

    /// @notice A complaint as stored: its customer and subject, its current round's status,
    /// start and step times (0 for a step not taken yet), the handler and the last rating.
    /// @param customer The account that opened it.
    /// @param kind The subject's kind.
    /// @param subjectRef The subject's reference.
    /// @param status Where the current round is.
    /// @param round 1 for the first round, + 1 on each reopening.
    /// @param rating The customer's rating of the latest resolution (1-5), 0 if none yet.
    /// @param roundStartedAt Block time of the opening (round 1) or of the latest reopening.
    /// @param respondedAt Block time of this round's first response, 0 if none yet.
    /// @param assignedAt Block time of this round's assignment, 0 if none yet.
    /// @param plannedAt Block time of this round's solution plan, 0 if none yet.
    /// @param resolvedAt Block time of this round's resolution, 0 if none yet.
    /// @param handler The handler id of the latest assignment (zero before one).
    struct Complaint {
        address customer;
        SubjectKind kind;
        bytes32 subjectRef;
        Status status;
        uint16 round;
        uint8 rating;
        uint64 roundStartedAt;
        uint64 respondedAt;
        uint64 assignedAt;
        uint64 plannedAt;
        uint64 resolvedAt;
        bytes32 handler;
    }

    /// @notice No complaint has this id (ids are 1..complaintCount()).
    error ComplaintRegistryUnknownComplaint(uint256 complaintId);
    /// @notice A subject kind outside `SubjectKind`.
    error ComplaintRegistryInvalidSubjectKind(uint8 kind);
    /// @notice A step taken when the complaint's status does not allow it (steps go in order).
    /// @param step The step tried: the `Status` it would lead to (`Open` for a reopening).
    /// @param status The complaint's status.
    error ComplaintRegistryStepOutOfOrder(uint256 complaintId, Status step, Status status);
    /// @notice A customer's step (rate, reopen) by an account that is not the complaint's customer.
    error ComplaintRegistryNotCustomer(uint256 complaintId, address account);
    /// @notice A rating outside 1-5.
    error ComplaintRegistryInvalidRating(uint256 complaintId, uint8 rating);
    /// @notice An assignment names the zero handler id.
    error ComplaintRegistryZeroHandler(uint256 complaintId);
    /// @notice A relayed step whose signature's deadline has passed.
    error ComplaintRegistrySignatureExpired(uint256 deadline, uint256 currentTime);
    /// @notice A relayed step whose signature is malformed or not the customer's.
    error ComplaintRegistryInvalidSignature(address customer);

    /// @notice A customer opened a complaint (round 1 starts at `at`).
    /// @param complaintId The new complaint's id.
    /// @param customer The account it belongs to.
    /// @param kind The subject's kind.
    /// @param subjectRef The subject's reference.
    /// @param textHash keccak256 of the complaint's text (UTF-8).
    /// @param at The block's time.
    event ComplaintOpened(
        uint256 indexed complaintId,
        address indexed customer,
        SubjectKind kind,
        bytes32 subjectRef,
        bytes32 textHash,
        uint64 at
    );
    /// @notice The operator gave its first response of a round.
    /// @param complaintId The complaint.
    /// @param round The round answered.
    /// @param textHash keccak256 of the response's text.
    /// @param at The block's time.
    event ComplaintResponded(uint256 indexed complaintId, uint16 round, bytes32 textHash, uint64 at);
    /// @notice The operator named the person handling a round.
    /// @param complaintId The complaint.
    /// @param round The round.
    /// @param handler The handler's id (the operator's staff reference, never zero).
    /// @param textHash keccak256 of the assignment's note.
    /// @param at The block's time.
    event ComplaintAssigned(
        uint256 indexed complaintId, uint16 round, bytes32 indexed handler, bytes32 textHash, uint64 at
    );
    /// @notice The operator recorded a round's solution plan.
    /// @param complaintId The complaint.
    /// @param round The round.
    /// @param textHash keccak256 of the plan's text.
    /// @param at The block's time.
    event ComplaintPlanned(uint256 indexed complaintId, uint16 round, bytes32 textHash, uint64 at);
    /// @notice The operator recorded a round's resolution.
    /// @param complaintId The complaint.
    /// @param round The round.
    /// @param textHash keccak256 of the resolution's text.
    /// @param at The block's time.
    event ComplaintResolved(uint256 indexed complaintId, uint16 round, bytes32 textHash, uint64 at);
    /// @notice The customer rated a round's resolution.
    /// @param complaintId The complaint.
    /// @param round The round rated.
    /// @param rating 1 (worst) to 5 (best).
    /// @param at The block's time.
    event ComplaintRated(uint256 indexed complaintId, uint16 round, uint8 rating, uint64 at);
    /// @notice The customer reopened a resolved complaint: round `round` starts at `at`.
    /// @param complaintId The complaint.
    /// @param round The new round.
    /// @param textHash keccak256 of the reopening's text.
    /// @param at The block's time.
    event ComplaintReopened(uint256 indexed complaintId, uint16 round, bytes32 textHash, uint64 at);

    /// @notice Opens a complaint as `msg.sender`.
    /// @param kind A `SubjectKind` as its number (0-4).
    /// @param subjectRef The subject's reference.
    /// @param textHash keccak256 of the complaint's text.
    /// @return complaintId The new complaint's id (complaintCount() after the call).
    function open(uint8 kind, bytes32 subjectRef, bytes32 textHash) external returns (uint256 complaintId);

    /// @notice Opens a complaint for `customer`, who signed EIP-712
    /// `Open(uint8 kind,bytes32 subjectRef,bytes32 textHash,address customer,uint256 nonce,uint256 deadline)`
    /// with its next nonce; anyone may relay it (the gateway does).
    /// @param deadline Last block time the signature is good for.
    /// @param signature 65 bytes r || s || v.
    function openBySig(
        uint8 kind,
        bytes32 subjectRef,
        bytes32 textHash,
        address customer,
        uint256 deadline,
        bytes calldata signature
    ) external returns (uint256 complaintId);

    /// @notice Records the first response of the current round (status Open -> Responded).
    function respond(uint256 complaintId, bytes32 textHash) external;

    /// @notice Names the handler of the current round (status Responded -> Assigned).
    function assign(uint256 complaintId, bytes32 handler, bytes32 textHash) external;

    /// @notice Records the current round's solution plan (status Assigned -> Planned).
    function plan(uint256 complaintId, bytes32 textHash) external;

    /// @notice Records the current round's resolution (status Planned -> Resolved).
    function resolve(uint256 complaintId, bytes32 textHash) external;

    /// @notice Rates the resolution as the complaint's customer (status Resolved -> Rated).
    /// @param rating 1 (worst) to 5 (best).
    function rate(uint256 complaintId, uint8 rating) external;

    /// @notice `rate` for `customer`, who signed EIP-712
    /// `Rate(uint256 complaintId,uint8 rating,address customer,uint256 nonce,uint256 deadline)`.
    function rateBySig(
        uint256 complaintId,
        uint8 rating,
        address customer,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Reopens a resolved (or rated) complaint as its customer: a new round starts.
    function reopen(uint256 complaintId, bytes32 textHash) external;

    /// @notice `reopen` for `customer`, who signed EIP-712
    /// `Reopen(uint256 complaintId,bytes32 textHash,address customer,uint256 nonce,uint256 deadline)`.
    function reopenBySig(
        uint256 complaintId,
        bytes32 textHash,
        address customer,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice How many complaints were opened (ids are 1..complaintCount()).
    function complaintCount() external view returns (uint256);

    /// @notice A complaint as stored.
    function complaint(uint256 complaintId) external view returns (Complaint memory);
}
