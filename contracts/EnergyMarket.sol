// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IEnergyMarket} from "./interfaces/IEnergyMarket.sol";
import {IMeterRegistry} from "./interfaces/IMeterRegistry.sol";
import {IReadingLedger} from "./interfaces/IReadingLedger.sol";
import {Reading, ReadingLeaf} from "./libraries/ReadingLeaf.sol";

/// @title EnergyMarket
/// @notice Peer-to-peer energy offers for one delivery slot, buyer escrow in the settlement token,
/// settlement from anchored meter readings. See IEnergyMarket for the rules.
contract EnergyMarket is IEnergyMarket, EIP712, Nonces, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice EIP-712 type of a relayed offer.
    bytes32 public constant OFFER_TYPEHASH = keccak256(
        "Offer(bytes32 sellerMeter,uint64 quantityWh,uint128 pricePerKWh,uint64 deliveryStart,uint64 expiry,address seller,uint256 nonce,uint256 deadline)"
    );
    /// @notice EIP-712 type of a relayed take.
    bytes32 public constant TAKE_TYPEHASH = keccak256(
        "Take(uint256 offerId,bytes32 buyerMeter,uint64 quantityWh,address buyer,uint256 nonce,uint256 deadline)"
    );
    /// @notice The domain tag of native readings, format v1 (docs/reading-format.md).
    bytes32 public constant READING_DOMAIN_TAG = ReadingLeaf.DOMAIN_TAG;
    /// @notice The tag of the reading leaves settlement accepts, version 2 (docs/reading-format.md).
    bytes32 public constant READING_LEAF_TAG = ReadingLeaf.LEAF_TAG_V2;
    /// @dev Seller start and end, buyer start and end.
    uint256 private constant _MAX_EVIDENCE = 4;
    uint256 private constant _WH_PER_KWH = 1000;

    IMeterRegistry public immutable meterRegistry;
    IReadingLedger public immutable readingLedger;
    IERC20 public immutable settlementToken;
    /// @notice Length of a delivery slot, seconds.
    uint64 public immutable slotSeconds;
    /// @notice A boundary reading must be taken less than this long after the boundary, seconds.
    uint64 public immutable boundaryWindow;
    /// @notice How long after its slot a trade can be settled; after that it can only be refunded.
    uint64 public immutable settlementWindow;
    /// @inheritdoc IEnergyMarket
    uint256 public immutable minTradeValue;

    uint256 private _offerCount;
    uint256 private _tradeCount;
    mapping(uint256 offerId => Offer) private _offers;
    mapping(uint256 tradeId => Trade) private _trades;
    mapping(bytes32 meterId => mapping(uint64 time => Boundary)) private _boundaries;
    mapping(bytes32 meterId => mapping(uint64 slotStart => uint64 wh)) private _exportSettled;
    mapping(bytes32 meterId => mapping(uint64 slotStart => uint64 wh)) private _importSettled;

    constructor(
        IMeterRegistry registry,
        IReadingLedger ledger,
        IERC20 token,
        uint64 slotSeconds_,
        uint64 boundaryWindow_,
        uint64 settlementWindow_,
        uint256 minTradeValue_
    ) EIP712("EnergyMarket", "1") {
        // A boundary reading must fall inside the slot it starts, or one reading could be the
        // boundary of two different times. A minimum of zero would let a take worth less than a
        // unit escrow one unit and pay nothing for the energy delivered.
        if (
            slotSeconds_ == 0 || boundaryWindow_ == 0 || boundaryWindow_ > slotSeconds_ || settlementWindow_ == 0
                || minTradeValue_ == 0
        ) {
            revert EnergyMarketInvalidConfiguration(slotSeconds_, boundaryWindow_, settlementWindow_, minTradeValue_);
        }
        uint64 challengePeriod = ledger.challengePeriod();
        if (challengePeriod >= settlementWindow_) {
            revert EnergyMarketChallengeNotShorterThanWindow(challengePeriod, settlementWindow_);
        }
        meterRegistry = registry;
        readingLedger = ledger;
        settlementToken = token;
        slotSeconds = slotSeconds_;
        boundaryWindow = boundaryWindow_;
        settlementWindow = settlementWindow_;
        minTradeValue = minTradeValue_;
    }

    /// @inheritdoc IEnergyMarket
    function createOffer(OfferTerms calldata terms) external returns (uint256 offerId) {
        return _createOffer(terms, msg.sender);
    }

    /// @inheritdoc IEnergyMarket
    function createOfferBySig(OfferTerms calldata terms, address seller, uint256 deadline, bytes calldata signature)
        external
        returns (uint256 offerId)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                OFFER_TYPEHASH,
                terms.sellerMeter,
                terms.quantityWh,
                terms.pricePerKWh,
                terms.deliveryStart,
                terms.expiry,
                seller,
                _useNonce(seller),
                deadline
            )
        );
        _checkSignature(seller, structHash, deadline, signature);
        return _createOffer(terms, seller);
    }

    /// @inheritdoc IEnergyMarket
    function cancelOffer(uint256 offerId) external {
        Offer storage offer_ = _openOffer(offerId);
        if (offer_.seller != msg.sender) revert EnergyMarketNotSeller(offerId, msg.sender);
        uint64 withdrawn = offer_.remainingWh;
        offer_.cancelled = true;
        offer_.remainingWh = 0;
        emit OfferCancelled(offerId, withdrawn);
    }

    /// @inheritdoc IEnergyMarket
    function takeOffer(uint256 offerId, bytes32 buyerMeter, uint64 quantityWh)
        external
        nonReentrant
        returns (uint256 tradeId)
    {
        uint128 escrow;
        (tradeId, escrow) = _recordTake(offerId, buyerMeter, quantityWh, msg.sender);
        settlementToken.safeTransferFrom(msg.sender, address(this), escrow);
    }

    /// @inheritdoc IEnergyMarket
    function takeOfferBySig(
        uint256 offerId,
        bytes32 buyerMeter,
        uint64 quantityWh,
        address buyer,
        uint256 deadline,
        bytes calldata signature
    ) external nonReentrant returns (uint256 tradeId) {
        _checkTakeSignature(offerId, buyerMeter, quantityWh, buyer, deadline, signature);
        uint128 escrow;
        (tradeId, escrow) = _recordTake(offerId, buyerMeter, quantityWh, buyer);
        // `buyer` signed this take (EIP-712, its nonce used up above): only its own units move.
        // slither-disable-next-line arbitrary-send-erc20
        settlementToken.safeTransferFrom(buyer, address(this), escrow);
    }

    /// @inheritdoc IEnergyMarket
    function takeOfferBySigWithPermit(
        uint256 offerId,
        bytes32 buyerMeter,
        uint64 quantityWh,
        address buyer,
        uint256 deadline,
        bytes calldata signature,
        PermitSignature calldata permit
    ) external nonReentrant returns (uint256 tradeId) {
        _checkTakeSignature(offerId, buyerMeter, quantityWh, buyer, deadline, signature);
        uint128 escrow;
        (tradeId, escrow) = _recordTake(offerId, buyerMeter, quantityWh, buyer);
        _usePermit(buyer, permit, escrow);
        // `buyer` signed this take (EIP-712, its nonce used up above): only its own units move.
        // slither-disable-next-line arbitrary-send-erc20
        settlementToken.safeTransferFrom(buyer, address(this), escrow);
    }

    /// @inheritdoc IEnergyMarket
    function pinBoundary(BoundaryEvidence calldata evidence) external {
        _pinBoundary(evidence);
    }

    /// @inheritdoc IEnergyMarket
    function settle(uint256 tradeId, BoundaryEvidence[] calldata evidence) external nonReentrant {
        if (evidence.length > _MAX_EVIDENCE) revert EnergyMarketTooMuchEvidence(evidence.length);
        for (uint256 i = 0; i < evidence.length; ++i) {
            _pinBoundary(evidence[i]);
        }
        Trade storage trade_ = _openTrade(tradeId);
        uint64 deliveryEnd = trade_.deliveryStart + slotSeconds;
        uint64 deadline = deliveryEnd + settlementWindow;
        // Slot and window boundaries are hours or days apart; a few seconds of block-time
        // leeway cannot move energy into another slot.
        // slither-disable-next-line timestamp
        if (block.timestamp < deliveryEnd) revert EnergyMarketDeliveryNotOver(tradeId, deliveryEnd);
        // slither-disable-next-line timestamp
        if (block.timestamp >= deadline) revert EnergyMarketSettlementClosed(tradeId, deadline);

        uint64 delivered = _allocateDelivery(trade_, deliveryEnd);

        uint128 escrow = trade_.escrow;
        // Rounded down: the seller is never paid more than the exact value of the delivered energy.
        // delivered <= quantity, so paid <= escrow, which was checked to fit 128 bits at take.
        uint128 paid = uint128(Math.mulDiv(delivered, trade_.pricePerKWh, _WH_PER_KWH));
        uint128 refunded = escrow - paid;

        trade_.state = TradeState.Settled;
        trade_.deliveredWh = delivered;
        trade_.paid = paid;
        emit TradeSettled(tradeId, delivered, paid, refunded);

        if (paid > 0) settlementToken.safeTransfer(trade_.seller, paid);
        if (refunded > 0) settlementToken.safeTransfer(trade_.buyer, refunded);
    }

    /// @inheritdoc IEnergyMarket
    function refund(uint256 tradeId) external nonReentrant {
        Trade storage trade_ = _openTrade(tradeId);
        uint64 deadline = trade_.deliveryStart + slotSeconds + settlementWindow;
        // slither-disable-next-line timestamp
        if (block.timestamp < deadline) revert EnergyMarketSettlementStillOpen(tradeId, deadline);
        uint128 escrow = trade_.escrow;
        trade_.state = TradeState.Refunded;
        emit TradeRefunded(tradeId, escrow);
        settlementToken.safeTransfer(trade_.buyer, escrow);
    }

    /// @inheritdoc IEnergyMarket
    function offer(uint256 offerId) external view returns (Offer memory) {
        if (offerId == 0 || offerId > _offerCount) revert EnergyMarketUnknownOffer(offerId);
        return _offers[offerId];
    }

    /// @inheritdoc IEnergyMarket
    function trade(uint256 tradeId) external view returns (Trade memory) {
        if (tradeId == 0 || tradeId > _tradeCount) revert EnergyMarketUnknownTrade(tradeId);
        return _trades[tradeId];
    }

    /// @inheritdoc IEnergyMarket
    function offerCount() external view returns (uint256) {
        return _offerCount;
    }

    /// @inheritdoc IEnergyMarket
    function tradeCount() external view returns (uint256) {
        return _tradeCount;
    }

    /// @inheritdoc IEnergyMarket
    function boundary(bytes32 meterId, uint64 time) external view returns (Boundary memory) {
        return _boundaries[meterId][time];
    }

    /// @inheritdoc IEnergyMarket
    function exportSettled(bytes32 meterId, uint64 slotStart) external view returns (uint64) {
        return _exportSettled[meterId][slotStart];
    }

    /// @inheritdoc IEnergyMarket
    function importSettled(bytes32 meterId, uint64 slotStart) external view returns (uint64) {
        return _importSettled[meterId][slotStart];
    }

    function _createOffer(OfferTerms calldata terms, address seller) private returns (uint256 offerId) {
        address owner = meterRegistry.ownerOf(terms.sellerMeter);
        if (owner != seller) revert EnergyMarketNotMeterOwner(terms.sellerMeter, seller);
        if (terms.quantityWh == 0) revert EnergyMarketZeroQuantity();
        if (terms.pricePerKWh == 0) revert EnergyMarketZeroPrice();
        // An offer that no take could reach the minimum with would only cost its relayer gas.
        _requireMinTradeValue(terms.quantityWh, terms.pricePerKWh);
        if (terms.deliveryStart % slotSeconds != 0) {
            revert EnergyMarketUnalignedTime(terms.deliveryStart, slotSeconds);
        }
        // The slot's end and refund time must fit uint64, or escrow taken for it could never be
        // settled or refunded.
        if (uint256(terms.deliveryStart) + slotSeconds + settlementWindow > type(uint64).max) {
            revert EnergyMarketDeliveryTooLate(terms.deliveryStart);
        }
        // Trading closes when delivery starts, so every trade is agreed before its energy flows.
        // slither-disable-next-line timestamp
        if (terms.expiry <= block.timestamp || terms.expiry > terms.deliveryStart) {
            revert EnergyMarketInvalidExpiry(terms.expiry, terms.deliveryStart, block.timestamp);
        }
        offerId = ++_offerCount;
        _offers[offerId] = Offer({
            seller: seller,
            deliveryStart: terms.deliveryStart,
            expiry: terms.expiry,
            sellerMeter: terms.sellerMeter,
            pricePerKWh: terms.pricePerKWh,
            remainingWh: terms.quantityWh,
            cancelled: false
        });
        emit OfferCreated(
            offerId,
            seller,
            terms.sellerMeter,
            terms.quantityWh,
            terms.pricePerKWh,
            terms.deliveryStart,
            terms.expiry
        );
    }

    function _checkTakeSignature(
        uint256 offerId,
        bytes32 buyerMeter,
        uint64 quantityWh,
        address buyer,
        uint256 deadline,
        bytes calldata signature
    ) private {
        bytes32 structHash = keccak256(
            abi.encode(TAKE_TYPEHASH, offerId, buyerMeter, quantityWh, buyer, _useNonce(buyer), deadline)
        );
        _checkSignature(buyer, structHash, deadline, signature);
    }

    /// @dev Books a take and returns its escrow; the caller moves the escrow in (last, as the
    /// only external call that moves tokens).
    function _recordTake(uint256 offerId, bytes32 buyerMeter, uint64 quantityWh, address buyer)
        private
        returns (uint256 tradeId, uint128 escrow)
    {
        Offer storage offer_ = _openOffer(offerId);
        // slither-disable-next-line timestamp
        if (block.timestamp >= offer_.expiry) revert EnergyMarketOfferExpired(offerId, offer_.expiry);
        if (quantityWh == 0) revert EnergyMarketZeroQuantity();
        uint64 remaining = offer_.remainingWh;
        if (quantityWh > remaining) revert EnergyMarketQuantityExceedsOffer(offerId, quantityWh, remaining);
        _requireMinTradeValue(quantityWh, offer_.pricePerKWh);
        bytes32 sellerMeter = offer_.sellerMeter;
        if (buyerMeter == sellerMeter) revert EnergyMarketSameMeter(buyerMeter);
        if (meterRegistry.ownerOf(buyerMeter) != buyer) revert EnergyMarketNotMeterOwner(buyerMeter, buyer);

        // Rounded up: escrow covers the exact price of the whole quantity; any leftover unit is
        // refunded at settlement. quantity < 2^64 and price < 2^128, so the product fits 256 bits,
        // but the escrow need not fit 128: a plain cast would escrow it modulo 2^128.
        escrow = SafeCast.toUint128(Math.mulDiv(quantityWh, offer_.pricePerKWh, _WH_PER_KWH, Math.Rounding.Ceil));
        offer_.remainingWh = remaining - quantityWh;
        tradeId = ++_tradeCount;
        _trades[tradeId] = Trade({
            offerId: offerId,
            seller: offer_.seller,
            deliveryStart: offer_.deliveryStart,
            buyer: buyer,
            quantityWh: quantityWh,
            sellerMeter: sellerMeter,
            buyerMeter: buyerMeter,
            pricePerKWh: offer_.pricePerKWh,
            deliveredWh: 0,
            state: TradeState.Open,
            escrow: escrow,
            paid: 0
        });
        emit OfferTaken(tradeId, offerId, buyer, buyerMeter, quantityWh, escrow);
    }

    /// @dev Rounding moves less than one unit per trade, so a trade worth at least the minimum
    /// loses at most 1 / minTradeValue of its value to it.
    function _requireMinTradeValue(uint64 quantityWh, uint128 pricePerKWh) private view {
        uint256 value = Math.mulDiv(quantityWh, pricePerKWh, _WH_PER_KWH);
        if (value < minTradeValue) revert EnergyMarketTradeTooSmall(value, minTradeValue);
    }

    /// @dev Uses the buyer's permit for the take being made. Its failure is ignored if the
    /// allowance covers the escrow anyway: the permit travels in public calldata, and whoever sent
    /// it first (a front-runner) set exactly the allowance the buyer signed, so refusing the take
    /// would let anyone block it. Otherwise the token's own error says why the permit failed.
    function _usePermit(address buyer, PermitSignature calldata permit, uint256 escrow) private {
        try IERC20Permit(address(settlementToken)).permit(
            buyer, address(this), permit.value, permit.deadline, permit.v, permit.r, permit.s
        ) {} catch (bytes memory reason) {
            if (settlementToken.allowance(buyer, address(this)) < escrow) {
                // Re-raises the token's custom error as it came, so callers see its name.
                // slither-disable-next-line assembly
                assembly ("memory-safe") {
                    revert(add(reason, 0x20), mload(reason))
                }
            }
        }
    }

    function _pinBoundary(BoundaryEvidence calldata evidence) private {
        uint64 time = evidence.time;
        if (time % slotSeconds != 0) revert EnergyMarketUnalignedTime(time, slotSeconds);
        Reading calldata reading = evidence.reading.reading;
        bytes32 meterId = reading.meterId;
        Boundary storage pinned = _boundaries[meterId][time];
        // Pinned once, from the first valid evidence: every later settlement sees the same registers.
        if (pinned.pinned) return;
        if (reading.timestamp < time || reading.timestamp - time >= boundaryWindow) {
            revert EnergyMarketReadingOutsideBoundary(meterId, time, reading.timestamp);
        }
        _requireAnchored(evidence.reading);
        if (reading.seq != 0) {
            // The predecessor taken before the boundary makes this reading the FIRST one at or
            // after it (a meter's timestamps strictly increase with seq), so the boundary reading
            // is unique and no one can pick a later one to shift energy between slots.
            Reading calldata previous = evidence.previous.reading;
            if (previous.meterId != meterId || previous.seq + 1 != reading.seq || previous.timestamp >= time) {
                revert EnergyMarketInvalidPreviousReading(meterId, reading.seq, previous.seq, previous.timestamp);
            }
            _requireAnchored(evidence.previous);
        }
        _boundaries[meterId][time] =
            Boundary({seq: reading.seq, importWh: reading.importWh, exportWh: reading.exportWh, pinned: true});
        emit BoundaryPinned(meterId, time, reading.seq, reading.importWh, reading.exportWh);
    }

    /// @dev Rebuilds the reading's leaf from its fields (never trusting a given hash: an inner node
    /// of the tree would also verify with a shortened proof) and checks it against its batch, which
    /// must be past its challenge period and not proven bad: until then anyone may still show
    /// one of its signatures forged. The leaf is built with this chain's id, so a reading of
    /// another chain never verifies.
    function _requireAnchored(AnchoredReading calldata anchored) private view {
        Reading calldata r = anchored.reading;
        uint256 batchId = anchored.batchId;
        // At most sixteen calls per settlement (four boundaries, two readings each, two calls a
        // reading), to the immutable ReadingLedger, whose only revert is for a batch id the caller
        // chose.
        // slither-disable-next-line calls-loop
        IReadingLedger.BatchStatus memory status = readingLedger.batchStatus(batchId);
        if (status.provenBad) revert EnergyMarketBatchProvenBad(batchId);
        // A challenge period is minutes to hours: a few seconds of block-time leeway change nothing.
        // slither-disable-next-line timestamp
        if (block.timestamp < status.challengeEndsAt) revert EnergyMarketBatchInChallenge(batchId, status.challengeEndsAt);
        bytes32 leaf = ReadingLeaf.hash(r, block.chainid, anchored.signedHash, anchored.signatureHash);
        // slither-disable-next-line calls-loop
        if (!readingLedger.verifyReading(batchId, leaf, anchored.proof)) {
            revert EnergyMarketReadingNotAnchored(r.meterId, r.seq, anchored.batchId);
        }
    }

    /// @dev delivered = min(contracted, seller export left in the slot, buyer import left in the
    /// slot), and books it against both meters' slot, so no Wh is settled twice.
    function _allocateDelivery(Trade storage trade_, uint64 deliveryEnd) private returns (uint64 delivered) {
        bytes32 sellerMeter = trade_.sellerMeter;
        bytes32 buyerMeter = trade_.buyerMeter;
        uint64 slotStart = trade_.deliveryStart;
        (, uint64 exported) = _slotEnergy(sellerMeter, slotStart, deliveryEnd);
        (uint64 imported,) = _slotEnergy(buyerMeter, slotStart, deliveryEnd);
        // Settled-so-far never exceeds the slot's energy: pinned boundaries never change, and every
        // settlement adds at most what was left.
        uint64 exportLeft = exported - _exportSettled[sellerMeter][slotStart];
        uint64 importLeft = imported - _importSettled[buyerMeter][slotStart];
        delivered = uint64(Math.min(trade_.quantityWh, Math.min(exportLeft, importLeft)));
        _exportSettled[sellerMeter][slotStart] += delivered;
        _importSettled[buyerMeter][slotStart] += delivered;
    }

    /// @dev A meter's import and export between the pinned boundaries of a slot.
    function _slotEnergy(bytes32 meterId, uint64 slotStart, uint64 slotEnd)
        private
        view
        returns (uint64 importedWh, uint64 exportedWh)
    {
        Boundary storage start = _boundaries[meterId][slotStart];
        Boundary storage end = _boundaries[meterId][slotEnd];
        if (!start.pinned) revert EnergyMarketBoundaryNotPinned(meterId, slotStart);
        if (!end.pinned) revert EnergyMarketBoundaryNotPinned(meterId, slotEnd);
        if (end.importWh < start.importWh || end.exportWh < start.exportWh) {
            revert EnergyMarketRegisterDecreased(meterId, slotEnd);
        }
        return (end.importWh - start.importWh, end.exportWh - start.exportWh);
    }

    function _checkSignature(address signer, bytes32 structHash, uint256 deadline, bytes calldata signature)
        private
        view
    {
        // slither-disable-next-line timestamp
        if (block.timestamp > deadline) revert EnergyMarketSignatureExpired(deadline, block.timestamp);
        // ECDSA (not SignatureChecker, whose OpenZeppelin 5.4 build needs Cancun's mcopy): sellers
        // and buyers are externally owned accounts. tryRecover refuses high-s and malformed
        // signatures; the nonce in the signed struct makes each signature usable once.
        // The unused third value only details a RecoverError, and the error itself is checked.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError error_,) = ECDSA.tryRecover(_hashTypedDataV4(structHash), signature);
        if (error_ != ECDSA.RecoverError.NoError || recovered != signer) revert EnergyMarketInvalidSignature(signer);
    }

    function _openOffer(uint256 offerId) private view returns (Offer storage offer_) {
        if (offerId == 0 || offerId > _offerCount) revert EnergyMarketUnknownOffer(offerId);
        offer_ = _offers[offerId];
        if (offer_.cancelled || offer_.remainingWh == 0) revert EnergyMarketOfferNotOpen(offerId);
    }

    function _openTrade(uint256 tradeId) private view returns (Trade storage trade_) {
        if (tradeId == 0 || tradeId > _tradeCount) revert EnergyMarketUnknownTrade(tradeId);
        trade_ = _trades[tradeId];
        if (trade_.state != TradeState.Open) revert EnergyMarketTradeNotOpen(tradeId, trade_.state);
    }
}
