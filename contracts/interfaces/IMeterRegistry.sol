// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IMeterRegistry
/// @notice Which account owns each meter, and which public key the meter signed with at any moment.
/// @dev A meter's keys form an append-only list of epochs ordered by `validFrom`. A key is valid from
/// its `validFrom` until the next epoch's `validFrom` or its own `revokedAt`, whichever comes first.
/// Nothing is ever deleted, so a reading signed before a rotation or revocation still verifies
/// against the key that was valid when it was taken.
interface IMeterRegistry {
    /// @notice One key of a meter and the time window it is valid in.
    /// @param algorithm 0 = ECDSA P-256 (secp256r1), 1 = Ed25519, 2 = ECDSA secp256k1.
    /// @param validFrom Unix time (s) from which the key signs readings.
    /// @param revokedAt Unix time (s) from which the key no longer signs readings; 0 = not revoked.
    /// The revocation's block time, or the earlier compromise time the registrar gave.
    /// @param publicKey SEC1 uncompressed point (65 bytes, 0x04 || x || y) for the ECDSA curves,
    /// the 32-byte public key for Ed25519.
    struct KeyEpoch {
        uint8 algorithm;
        uint64 validFrom;
        uint64 revokedAt;
        bytes publicKey;
    }

    /// @notice The meter id is registered already.
    error MeterRegistryMeterAlreadyRegistered(bytes32 meterId);
    /// @notice No meter with this id is registered.
    error MeterRegistryUnknownMeter(bytes32 meterId);
    /// @notice A meter must be owned by a non-zero account.
    error MeterRegistryZeroOwner(bytes32 meterId);
    /// @notice The algorithm code is not one of the supported ones (0, 1, 2).
    error MeterRegistryUnsupportedAlgorithm(uint8 algorithm);
    /// @notice The public key has the wrong length or prefix for its algorithm.
    error MeterRegistryInvalidPublicKey(uint8 algorithm, uint256 length);
    /// @notice The public key has the right length but is unusable: an Ed25519 key that is a
    /// small-order point (with such a key forged signatures verify) or not canonically encoded.
    error MeterRegistryWeakPublicKey(uint8 algorithm, bytes publicKey);
    /// @notice A rotation must start after the current key's start.
    error MeterRegistryKeyNotAfterPrevious(bytes32 meterId, uint64 validFrom, uint64 previousValidFrom);
    /// @notice A rotation cannot take effect in the past: that would invalidate readings already signed.
    error MeterRegistryValidFromInPast(bytes32 meterId, uint64 validFrom, uint64 currentTime);
    /// @notice The meter's current key is revoked already (at or before the time given).
    error MeterRegistryKeyAlreadyRevoked(bytes32 meterId, uint256 epoch);
    /// @notice A compromise time cannot lie in the future.
    error MeterRegistryCompromiseInFuture(bytes32 meterId, uint64 compromisedSince, uint64 currentTime);
    /// @notice A compromise time before the current key's start concerns another key.
    error MeterRegistryCompromiseBeforeKey(
        bytes32 meterId, uint256 epoch, uint64 compromisedSince, uint64 validFrom
    );
    /// @notice The meter had no valid key at that time (before its first key, or inside a revocation).
    error MeterRegistryNoKeyAt(bytes32 meterId, uint64 timestamp);
    /// @notice The key epoch index is out of range.
    error MeterRegistryUnknownEpoch(bytes32 meterId, uint256 epoch);

    /// @notice A meter was registered with its first key.
    /// @param meterId The meter's id (for example keccak256 of its serial number, or the serial itself).
    /// @param owner The account that owns the meter's energy (the customer or prosumer).
    /// @param algorithm The first key's algorithm code.
    /// @param publicKey The first key.
    /// @param validFrom When the first key starts to sign readings.
    event MeterRegistered(
        bytes32 indexed meterId, address indexed owner, uint8 algorithm, bytes publicKey, uint64 validFrom
    );
    /// @notice A meter's key was rotated: a new epoch was appended.
    /// @param meterId The meter.
    /// @param epoch Index of the new epoch.
    /// @param algorithm The new key's algorithm code.
    /// @param publicKey The new key.
    /// @param validFrom When the new key takes over from the previous one.
    event MeterKeyRotated(
        bytes32 indexed meterId, uint256 epoch, uint8 algorithm, bytes publicKey, uint64 validFrom
    );
    /// @notice A meter's current key was revoked.
    /// @param meterId The meter.
    /// @param epoch Index of the revoked epoch.
    /// @param revokedAt When the key stopped being valid: the block time of the revocation, or the
    /// compromise time given to `revokeKeyCompromisedSince` (earlier; readings of the key
    /// timestamped from then on no longer verify, so any already accepted are suspect).
    event MeterKeyRevoked(bytes32 indexed meterId, uint256 epoch, uint64 revokedAt);

    /// @notice The role of the accounts that may read every customer's off-chain data (readings,
    /// consumption, bills) at the gateways that trust this registry; it grants no write here.
    /// The admin grants it with `grantRole(AUDITOR_ROLE, account)`; a gateway checks `hasRole` when
    /// the account signs in (Sign-In with Ethereum).
    /// @return role keccak256("AUDITOR_ROLE").
    function AUDITOR_ROLE() external view returns (bytes32 role);

    /// @notice Registers a meter with its owner and first key. Registrar role only.
    /// @dev `validFrom` may lie in the past (a meter installed before it was registered): with no
    /// earlier key, nothing already signed can be invalidated by it.
    function registerMeter(
        bytes32 meterId,
        address owner,
        uint8 algorithm,
        bytes calldata publicKey,
        uint64 validFrom
    ) external;

    /// @notice Appends a new key epoch that takes over at `validFrom` (not in the past). Registrar only.
    /// @return epoch Index of the new epoch.
    function rotateKey(bytes32 meterId, uint8 algorithm, bytes calldata publicKey, uint64 validFrom)
        external
        returns (uint256 epoch);

    /// @notice Revokes the key valid now (not a scheduled one) from now on. Registrar only.
    /// @return epoch Index of the revoked epoch.
    function revokeKey(bytes32 meterId) external returns (uint256 epoch);

    /// @notice Revokes the key valid now from `compromisedSince` on: a key found stolen is
    /// refused for readings dated after the theft, not only after its discovery. Registrar only.
    /// @dev `compromisedSince` must lie between the key's `validFrom` and the block time
    /// (`MeterRegistryCompromiseBeforeKey`, `MeterRegistryCompromiseInFuture`). A key revoked
    /// already may have its `revokedAt` moved earlier this way, never later
    /// (`MeterRegistryKeyAlreadyRevoked`). Emits `MeterKeyRevoked` with `revokedAt = compromisedSince`.
    /// @return epoch Index of the revoked epoch.
    function revokeKeyCompromisedSince(bytes32 meterId, uint64 compromisedSince)
        external
        returns (uint256 epoch);

    /// @notice Whether a meter with this id is registered.
    function isRegistered(bytes32 meterId) external view returns (bool);

    /// @notice The account that owns the meter.
    function ownerOf(bytes32 meterId) external view returns (address);

    /// @notice How many key epochs the meter has had.
    function keyEpochCount(bytes32 meterId) external view returns (uint256);

    /// @notice One key epoch of the meter, by index (0 = first key).
    function keyEpoch(bytes32 meterId, uint256 epoch) external view returns (KeyEpoch memory);

    /// @notice The key that was valid for the meter at `timestamp`; reverts with
    /// `MeterRegistryNoKeyAt` when there was none.
    function keyAt(bytes32 meterId, uint64 timestamp)
        external
        view
        returns (uint256 epoch, KeyEpoch memory key);
}
