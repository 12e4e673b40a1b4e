// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title SettlementToken
/// @notice The settlement currency of the energy market, counted in minor units of a millionth
/// (`decimals()` is 6, as stablecoins use): fine enough that rounding a trade to a unit is
/// negligible (a cent would take up to half of a small trade), and wallets show whole currency.
/// @dev ERC-2612 `permit` lets a customer approve the market with a signature, so the gateway can
/// relay a purchase for a customer who holds no ether. In the demo and the tests the operator
/// mints balances to customers; a production deployment would mint against deposits.
contract SettlementToken is ERC20, ERC20Permit, AccessControl {
    /// @notice May mint new units.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param admin Receives the admin and minter roles.
    /// @dev The name is also the ERC-2612 permit domain's name.
    constructor(address admin) ERC20("Energy Ledger Currency", "ELC") ERC20Permit("Energy Ledger Currency") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    /// @notice Minor units: 1 token unit = 0.000001 of the currency.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mints `amount` minor units to `to`. Minter role only.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }
}
