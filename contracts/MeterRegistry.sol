// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IMeterRegistry} from "./interfaces/IMeterRegistry.sol";

/// @title MeterRegistry
/// @notice Meter id -> owner account and the append-only history of the meter's signing keys.
contract MeterRegistry is IMeterRegistry, AccessControl {
    /// @notice May register meters, rotate and revoke their keys.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    /// @inheritdoc IMeterRegistry
    bytes32 public constant AUDITOR_ROLE = keccak256("AUDITOR_ROLE");

    uint8 private constant _ALGORITHM_P256 = 0;
    uint8 private constant _ALGORITHM_ED25519 = 1;
    uint8 private constant _ALGORITHM_SECP256K1 = 2;

    mapping(bytes32 meterId => address owner) private _owners;
    mapping(bytes32 meterId => KeyEpoch[] epochs) private _epochs;

    /// @param admin Receives the admin and registrar roles.
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
    }

    /// @inheritdoc IMeterRegistry
    function registerMeter(
        bytes32 meterId,
        address owner,
        uint8 algorithm,
        bytes calldata publicKey,
        uint64 validFrom
    ) external onlyRole(REGISTRAR_ROLE) {
        if (_owners[meterId] != address(0)) revert MeterRegistryMeterAlreadyRegistered(meterId);
        if (owner == address(0)) revert MeterRegistryZeroOwner(meterId);
        _checkPublicKey(algorithm, publicKey);
        _owners[meterId] = owner;
        _epochs[meterId].push(
            KeyEpoch({algorithm: algorithm, validFrom: validFrom, revokedAt: 0, publicKey: publicKey})
        );
        emit MeterRegistered(meterId, owner, algorithm, publicKey, validFrom);
    }

    /// @inheritdoc IMeterRegistry
    function rotateKey(bytes32 meterId, uint8 algorithm, bytes calldata publicKey, uint64 validFrom)
        external
        onlyRole(REGISTRAR_ROLE)
        returns (uint256 epoch)
    {
        KeyEpoch[] storage epochs = _existingEpochs(meterId);
        _checkPublicKey(algorithm, publicKey);
        // A back-dated rotation would silently invalidate readings the old key already signed.
        if (validFrom < block.timestamp) {
            revert MeterRegistryValidFromInPast(meterId, validFrom, uint64(block.timestamp));
        }
        uint64 previousValidFrom = epochs[epochs.length - 1].validFrom;
        // Strictly increasing starts keep the lookup by time unambiguous (binary search in keyAt).
        if (validFrom <= previousValidFrom) {
            revert MeterRegistryKeyNotAfterPrevious(meterId, validFrom, previousValidFrom);
        }
        epoch = epochs.length;
        epochs.push(KeyEpoch({algorithm: algorithm, validFrom: validFrom, revokedAt: 0, publicKey: publicKey}));
        emit MeterKeyRotated(meterId, epoch, algorithm, publicKey, validFrom);
    }

    /// @inheritdoc IMeterRegistry
    function revokeKey(bytes32 meterId) external onlyRole(REGISTRAR_ROLE) returns (uint256 epoch) {
        KeyEpoch[] storage epochs = _existingEpochs(meterId);
        epoch = _currentEpoch(epochs);
        // Without a known compromise, revocation takes effect now: readings signed before it
        // stay valid. A first key that has not started yet is revoked before it ever signs.
        _revoke(meterId, epochs[epoch], epoch, uint64(block.timestamp));
    }

    /// @inheritdoc IMeterRegistry
    function revokeKeyCompromisedSince(bytes32 meterId, uint64 compromisedSince)
        external
        onlyRole(REGISTRAR_ROLE)
        returns (uint256 epoch)
    {
        if (compromisedSince > block.timestamp) {
            revert MeterRegistryCompromiseInFuture(meterId, compromisedSince, uint64(block.timestamp));
        }
        KeyEpoch[] storage epochs = _existingEpochs(meterId);
        epoch = _currentEpoch(epochs);
        KeyEpoch storage current = epochs[epoch];
        // A compromise before the key's start concerns another key: revoking this one from then
        // would not be what happened.
        if (compromisedSince < current.validFrom) {
            revert MeterRegistryCompromiseBeforeKey(meterId, epoch, compromisedSince, current.validFrom);
        }
        _revoke(meterId, current, epoch, compromisedSince);
    }

    /// @inheritdoc IMeterRegistry
    function isRegistered(bytes32 meterId) external view returns (bool) {
        return _owners[meterId] != address(0);
    }

    /// @inheritdoc IMeterRegistry
    function ownerOf(bytes32 meterId) external view returns (address) {
        address owner = _owners[meterId];
        if (owner == address(0)) revert MeterRegistryUnknownMeter(meterId);
        return owner;
    }

    /// @inheritdoc IMeterRegistry
    function keyEpochCount(bytes32 meterId) external view returns (uint256) {
        return _existingEpochs(meterId).length;
    }

    /// @inheritdoc IMeterRegistry
    function keyEpoch(bytes32 meterId, uint256 epoch) external view returns (KeyEpoch memory) {
        KeyEpoch[] storage epochs = _existingEpochs(meterId);
        if (epoch >= epochs.length) revert MeterRegistryUnknownEpoch(meterId, epoch);
        return epochs[epoch];
    }

    /// @inheritdoc IMeterRegistry
    function keyAt(bytes32 meterId, uint64 timestamp)
        external
        view
        returns (uint256 epoch, KeyEpoch memory key)
    {
        KeyEpoch[] storage epochs = _existingEpochs(meterId);
        uint256 started = _startedEpochs(epochs, timestamp);
        if (started == 0) revert MeterRegistryNoKeyAt(meterId, timestamp);
        epoch = started - 1;
        key = epochs[epoch];
        if (key.revokedAt != 0 && timestamp >= key.revokedAt) revert MeterRegistryNoKeyAt(meterId, timestamp);
    }

    /// @dev How many epochs have validFrom <= timestamp, by binary search: O(log n) however long
    /// the key history grows (validFrom is strictly increasing).
    function _startedEpochs(KeyEpoch[] storage epochs, uint64 timestamp) private view returns (uint256 low) {
        uint256 high = epochs.length;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (epochs[mid].validFrom <= timestamp) low = mid + 1;
            else high = mid;
        }
    }

    /// @dev The key valid now, not the last one: a rotation may be scheduled but not started yet,
    /// and revoking only that would leave the key in use valid until the rotation starts. Epoch 0
    /// when even the first key has not started.
    function _currentEpoch(KeyEpoch[] storage epochs) private view returns (uint256) {
        uint256 started = _startedEpochs(epochs, uint64(block.timestamp));
        return started == 0 ? 0 : started - 1;
    }

    /// @dev Revokes `key` from `revokedAt` on. A key revoked already may only have its revocation
    /// moved earlier (a compromise found to predate it), never later.
    function _revoke(bytes32 meterId, KeyEpoch storage key, uint256 epoch, uint64 revokedAt) private {
        if (key.revokedAt != 0 && revokedAt >= key.revokedAt) {
            revert MeterRegistryKeyAlreadyRevoked(meterId, epoch);
        }
        key.revokedAt = revokedAt;
        emit MeterKeyRevoked(meterId, epoch, revokedAt);
    }

    function _existingEpochs(bytes32 meterId) private view returns (KeyEpoch[] storage epochs) {
        if (_owners[meterId] == address(0)) revert MeterRegistryUnknownMeter(meterId);
        return _epochs[meterId];
    }

    /// @dev Whether a 32-byte Ed25519 key is one of the encodings any signature scheme check
    /// must refuse: y >= p (non-canonical), or y of one of the 8 small-order points (identity,
    /// order 2, 4 and 8), whose keys let forged signatures verify. The encoding is y little-endian
    /// with x's sign in the top bit; held in a bytes32, byte 0 is y's lowest byte. Points off the
    /// curve and mixed-order points need curve arithmetic: the gateway refuses those.
    function _isWeakEd25519(bytes32 key) private pure returns (bool) {
        bytes32 y = key & ~bytes32(uint256(0x80)); // drop the sign bit of x
        // p = 2^255 - 19 little-endian is ed ff .. ff 7f: y >= p means all of bytes 1..31 equal
        // p's and byte 0 is at least 0xed.
        if (uint256(y) & type(uint248).max == type(uint248).max - 0x80 && uint8(y[0]) >= 0xed) {
            return true;
        }
        return y == bytes32(0) // y = 0: the two points of order 4
            || y == bytes32(uint256(1) << 248) // y = 1: the identity
            || y == 0xecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f // y = -1: order 2
            || y == 0x26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05 // order 8
            || y == 0xc7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a; // order 8
    }

    function _checkPublicKey(uint8 algorithm, bytes calldata publicKey) private pure {
        if (algorithm == _ALGORITHM_ED25519) {
            if (publicKey.length != 32) revert MeterRegistryInvalidPublicKey(algorithm, publicKey.length);
            if (_isWeakEd25519(bytes32(publicKey))) revert MeterRegistryWeakPublicKey(algorithm, publicKey);
        } else if (algorithm == _ALGORITHM_P256 || algorithm == _ALGORITHM_SECP256K1) {
            // SEC1 uncompressed point: 0x04 || x || y. One fixed encoding per algorithm keeps the
            // off-chain verifier free of point decompression.
            if (publicKey.length != 65 || publicKey[0] != 0x04) {
                revert MeterRegistryInvalidPublicKey(algorithm, publicKey.length);
            }
        } else {
            revert MeterRegistryUnsupportedAlgorithm(algorithm);
        }
    }
}
