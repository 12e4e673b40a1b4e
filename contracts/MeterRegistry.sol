// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IMeterRegistry} from "./interfaces/IMeterRegistry.sol";

/// @title MeterRegistry
/// @notice Meter id -> owner account and the append-only history of the meter's signing keys.
contract MeterRegistry is IMeterRegistry, AccessControl {
    /// @notice May register meters, rotate and revoke their keys.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

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
        uint64 revokedAt = uint64(block.timestamp);
        // The key valid now, not the last one: a rotation may be scheduled but not started yet,
        // and revoking only that would leave the key in use valid until the rotation starts.
        uint256 started = _startedEpochs(epochs, revokedAt);
        epoch = started == 0 ? 0 : started - 1;
        KeyEpoch storage current = epochs[epoch];
        if (current.revokedAt != 0) revert MeterRegistryKeyAlreadyRevoked(meterId, epoch);
        // Revocation takes effect now, never earlier: readings signed before it stay valid.
        current.revokedAt = revokedAt;
        emit MeterKeyRevoked(meterId, epoch, revokedAt);
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

    function _existingEpochs(bytes32 meterId) private view returns (KeyEpoch[] storage epochs) {
        if (_owners[meterId] == address(0)) revert MeterRegistryUnknownMeter(meterId);
        return _epochs[meterId];
    }

    function _checkPublicKey(uint8 algorithm, bytes calldata publicKey) private pure {
        if (algorithm == _ALGORITHM_ED25519) {
            if (publicKey.length != 32) revert MeterRegistryInvalidPublicKey(algorithm, publicKey.length);
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
