// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Reading} from "../libraries/ReadingLeaf.sol";

/// @title IEnergyMarket
/// @notice Peer-to-peer energy trades for one delivery slot, escrowed in the settlement token and
/// settled from signed, anchored meter readings (docs/market.md has the full rules).
/// @dev Time is cut into slots of `slotSeconds` (a delivery interval is exactly one slot,
/// `[deliveryStart, deliveryStart + slotSeconds)`). The energy of a meter in a slot is the
/// difference of its registers between the slot's two boundary readings. The boundary reading of
/// meter m at time t is the FIRST reading of m at or after t: the reading with seq n and
/// `t <= timestamp < t + boundaryWindow`, whose predecessor (seq n - 1) has `timestamp < t`
/// (n = 0 needs no predecessor). Both must be in anchored batches; the contract rebuilds their
/// leaves from the fields (a leaf hash is never accepted). Once proven, a boundary is pinned and
/// reused, so the end boundary of one slot is exactly the start boundary of the next.
///
/// No double counting: per (meter, slot) the contract keeps how many Wh of the seller's export
/// and of the buyer's import trades have already been settled against; a trade gets at most what
/// is left. Prices are minor units per kWh: escrow = ceil(quantity * price / 1000), payment =
/// floor(delivered * price / 1000), refund = escrow - payment, so the seller is never paid more
/// than the exact value of what was delivered and the buyer gets every leftover unit back.
///
/// Rounding costs either side less than one minor unit per trade, and every offer and take is
/// worth at least `minTradeValue` units (floor(quantity * price / 1000)), so rounding never takes
/// more than 1 / minTradeValue of a trade's value: tiny takes cannot get energy for nothing.
interface IEnergyMarket {
    /// @notice What a prosumer offers: energy from one meter in one slot.
    /// @param sellerMeter The meter whose export delivers the energy; the offerer must own it.
    /// @param quantityWh Energy offered, Wh.
    /// @param pricePerKWh Price in minor units of the settlement token per kWh.
    /// @param deliveryStart Start of the delivery slot (a multiple of `slotSeconds`).
    /// @param expiry The offer can be taken until (excluding) this time; at most `deliveryStart`.
    struct OfferTerms {
        bytes32 sellerMeter;
        uint64 quantityWh;
        uint128 pricePerKWh;
        uint64 deliveryStart;
        uint64 expiry;
    }

    /// @notice An offer on the market.
    struct Offer {
        address seller;
        uint64 deliveryStart;
        uint64 expiry;
        bytes32 sellerMeter;
        uint128 pricePerKWh;
        uint64 remainingWh;
        bool cancelled;
    }

    enum TradeState {
        None,
        Open,
        Settled,
        Refunded
    }

    /// @notice A taken (part of an) offer and its escrow.
    struct Trade {
        uint256 offerId;
        address seller;
        uint64 deliveryStart;
        address buyer;
        uint64 quantityWh;
        bytes32 sellerMeter;
        bytes32 buyerMeter;
        uint128 pricePerKWh;
        uint64 deliveredWh;
        TradeState state;
        uint128 escrow;
        uint128 paid;
    }

    /// @notice A reading (its fields are in contracts/libraries/ReadingLeaf.sol, shared by every
    /// contract that checks readings) with its Merkle proof against an anchored batch of the
    /// ReadingLedger.
    /// @param signedHash keccak256 of the exact bytes the meter signed (native: the canonical bytes).
    /// @param signatureHash keccak256 of the signature in its fixed form (ECDSA r || s).
    /// Both are part of the reading's version-2 leaf; neither is checked here (a fraud proof to
    /// the ReadingLedger does that, within the batch's challenge period).
    struct AnchoredReading {
        Reading reading;
        bytes32 signedHash;
        bytes32 signatureHash;
        uint256 batchId;
        bytes32[] proof;
    }

    /// @notice Evidence for the boundary reading of `reading.meterId` at `time`.
    /// @param previous The reading with seq - 1 (ignored when `reading.seq` is 0).
    struct BoundaryEvidence {
        uint64 time;
        AnchoredReading reading;
        AnchoredReading previous;
    }

    /// @notice A pinned boundary: the registers of a meter's first reading at or after a time.
    struct Boundary {
        uint64 seq;
        uint64 importWh;
        uint64 exportWh;
        bool pinned;
    }

    /// @notice A buyer's ERC-2612 permit of the settlement token, letting the market spend `value`.
    /// @param value The allowance the permit sets (at least the take's escrow).
    /// @param deadline The permit is usable while `block.timestamp <= deadline`.
    struct PermitSignature {
        uint256 value;
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    /// @notice Slot, windows and minimum trade value must be positive and the boundary window at
    /// most one slot.
    error EnergyMarketInvalidConfiguration(
        uint64 slotSeconds, uint64 boundaryWindow, uint64 settlementWindow, uint256 minTradeValue
    );
    /// @notice The account is not the registered owner of the meter.
    error EnergyMarketNotMeterOwner(bytes32 meterId, address account);
    /// @notice Quantities must be positive.
    error EnergyMarketZeroQuantity();
    /// @notice An offer or take worth less than `minTradeValue`: `value` is
    /// floor(quantity * price / 1000) minor units.
    error EnergyMarketTradeTooSmall(uint256 value, uint256 minimum);
    /// @notice Prices must be positive.
    error EnergyMarketZeroPrice();
    /// @notice The time is not a slot boundary (a multiple of `slotSeconds`).
    error EnergyMarketUnalignedTime(uint64 time, uint64 slotSeconds);
    /// @notice The slot's settlement deadline would not fit 64 bits.
    error EnergyMarketDeliveryTooLate(uint64 deliveryStart);
    /// @notice An offer must expire in the future and no later than its delivery start.
    error EnergyMarketInvalidExpiry(uint64 expiry, uint64 deliveryStart, uint256 currentTime);
    /// @notice The signed message's deadline has passed.
    error EnergyMarketSignatureExpired(uint256 deadline, uint256 currentTime);
    /// @notice The signature is not the signer's over this message, chain, contract and nonce.
    error EnergyMarketInvalidSignature(address signer);
    /// @notice No offer with this id.
    error EnergyMarketUnknownOffer(uint256 offerId);
    /// @notice The offer is cancelled or fully taken.
    error EnergyMarketOfferNotOpen(uint256 offerId);
    /// @notice The offer's expiry has passed.
    error EnergyMarketOfferExpired(uint256 offerId, uint64 expiry);
    /// @notice More than the offer's remaining quantity was asked for.
    error EnergyMarketQuantityExceedsOffer(uint256 offerId, uint64 quantityWh, uint64 remainingWh);
    /// @notice Buyer and seller meter are the same meter.
    error EnergyMarketSameMeter(bytes32 meterId);
    /// @notice Only the offer's seller may do this.
    error EnergyMarketNotSeller(uint256 offerId, address account);
    /// @notice No trade with this id.
    error EnergyMarketUnknownTrade(uint256 tradeId);
    /// @notice The trade is already settled or refunded.
    error EnergyMarketTradeNotOpen(uint256 tradeId, TradeState state);
    /// @notice The delivery slot has not ended yet.
    error EnergyMarketDeliveryNotOver(uint256 tradeId, uint64 deliveryEnd);
    /// @notice Settlement is only possible before `deliveryEnd + settlementWindow`.
    error EnergyMarketSettlementClosed(uint256 tradeId, uint64 settlementDeadline);
    /// @notice A refund is only possible from `deliveryEnd + settlementWindow` on.
    error EnergyMarketSettlementStillOpen(uint256 tradeId, uint64 settlementDeadline);
    /// @notice A settlement carries at most four boundaries (seller and buyer, start and end).
    error EnergyMarketTooMuchEvidence(uint256 count);
    /// @notice The reading is not within `[time, time + boundaryWindow)`.
    error EnergyMarketReadingOutsideBoundary(bytes32 meterId, uint64 time, uint64 timestamp);
    /// @notice The reading is not in the given anchored batch.
    error EnergyMarketReadingNotAnchored(bytes32 meterId, uint64 seq, uint256 batchId);
    /// @notice The reading's batch is still in its challenge period: it cannot be used before
    /// `challengeEndsAt`.
    error EnergyMarketBatchInChallenge(uint256 batchId, uint64 challengeEndsAt);
    /// @notice The reading's batch was proven bad: none of its readings is evidence.
    error EnergyMarketBatchProvenBad(uint256 batchId);
    /// @notice The ReadingLedger's challenge period must be shorter than the settlement window, or
    /// a trade could never be settled from a batch anchored after its slot.
    error EnergyMarketChallengeNotShorterThanWindow(uint64 challengePeriod, uint64 settlementWindow);
    /// @notice The previous reading is not the same meter's seq - 1 from before the boundary.
    error EnergyMarketInvalidPreviousReading(bytes32 meterId, uint64 seq, uint64 previousSeq, uint64 previousTimestamp);
    /// @notice A boundary needed for settlement has not been proven.
    error EnergyMarketBoundaryNotPinned(bytes32 meterId, uint64 time);
    /// @notice A register is lower at the slot's end than at its start.
    error EnergyMarketRegisterDecreased(bytes32 meterId, uint64 time);

    /// @notice An offer was put on the market.
    event OfferCreated(
        uint256 indexed offerId,
        address indexed seller,
        bytes32 indexed sellerMeter,
        uint64 quantityWh,
        uint128 pricePerKWh,
        uint64 deliveryStart,
        uint64 expiry
    );
    /// @notice The untaken rest of an offer was withdrawn.
    event OfferCancelled(uint256 indexed offerId, uint64 withdrawnWh);
    /// @notice A buyer took (part of) an offer and escrowed its price.
    event OfferTaken(
        uint256 indexed tradeId,
        uint256 indexed offerId,
        address indexed buyer,
        bytes32 buyerMeter,
        uint64 quantityWh,
        uint128 escrow
    );
    /// @notice A meter's boundary reading at `time` was proven and pinned.
    event BoundaryPinned(bytes32 indexed meterId, uint64 indexed time, uint64 seq, uint64 importWh, uint64 exportWh);
    /// @notice A trade was settled: `paid` to the seller, `refunded` to the buyer.
    event TradeSettled(uint256 indexed tradeId, uint64 deliveredWh, uint128 paid, uint128 refunded);
    /// @notice A trade not settled in time returned its whole escrow to the buyer.
    event TradeRefunded(uint256 indexed tradeId, uint128 refunded);

    /// @notice Offers energy as `msg.sender`, who must own `terms.sellerMeter`.
    function createOffer(OfferTerms calldata terms) external returns (uint256 offerId);

    /// @notice Offers energy for `seller`, relayed with the seller's EIP-712 `Offer` signature.
    function createOfferBySig(OfferTerms calldata terms, address seller, uint256 deadline, bytes calldata signature)
        external
        returns (uint256 offerId);

    /// @notice Withdraws the untaken rest of an offer. Seller only.
    function cancelOffer(uint256 offerId) external;

    /// @notice Takes `quantityWh` of an offer for `buyerMeter` (owned by `msg.sender`), escrowing
    /// ceil(quantity * price / 1000) of the settlement token (approve the market first).
    function takeOffer(uint256 offerId, bytes32 buyerMeter, uint64 quantityWh) external returns (uint256 tradeId);

    /// @notice Takes an offer for `buyer`, relayed with the buyer's EIP-712 `Take` signature.
    function takeOfferBySig(
        uint256 offerId,
        bytes32 buyerMeter,
        uint64 quantityWh,
        address buyer,
        uint256 deadline,
        bytes calldata signature
    ) external returns (uint256 tradeId);

    /// @notice `takeOfferBySig` with the buyer's ERC-2612 permit in the same call, for a buyer
    /// without ether: the permit is used only by a take that goes through, so a relayer never
    /// pays for a permit whose take is refused (the whole call reverts).
    /// @dev The permit is tried and its failure ignored when the allowance already covers the
    /// escrow: a permit is public once sent, and anyone may use it first (front-running it), which
    /// sets the same allowance. Otherwise the permit's own error is raised
    /// (`ERC2612ExpiredSignature`, `ERC2612InvalidSigner`).
    function takeOfferBySigWithPermit(
        uint256 offerId,
        bytes32 buyerMeter,
        uint64 quantityWh,
        address buyer,
        uint256 deadline,
        bytes calldata signature,
        PermitSignature calldata permit
    ) external returns (uint256 tradeId);

    /// @notice Proves and pins a meter's boundary reading (a no-op if already pinned).
    function pinBoundary(BoundaryEvidence calldata evidence) external;

    /// @notice Settles a trade after its slot: pins the given boundaries, then pays
    /// min(quantity, seller export left, buyer import left) and refunds the rest. Anyone may call.
    function settle(uint256 tradeId, BoundaryEvidence[] calldata evidence) external;

    /// @notice Returns the whole escrow of a trade not settled within the settlement window.
    function refund(uint256 tradeId) external;

    /// @notice The least value, floor(quantity * price / 1000) minor units, of an offer or take.
    function minTradeValue() external view returns (uint256);
    function offer(uint256 offerId) external view returns (Offer memory);
    function trade(uint256 tradeId) external view returns (Trade memory);
    function offerCount() external view returns (uint256);
    function tradeCount() external view returns (uint256);
    function boundary(bytes32 meterId, uint64 time) external view returns (Boundary memory);
    /// @notice Wh of the meter's export in the slot starting at `slotStart` already settled.
    function exportSettled(bytes32 meterId, uint64 slotStart) external view returns (uint64);
    /// @notice Wh of the meter's import in the slot starting at `slotStart` already settled.
    function importSettled(bytes32 meterId, uint64 slotStart) external view returns (uint64);
}
