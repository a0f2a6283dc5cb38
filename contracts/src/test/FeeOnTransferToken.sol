// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FeeOnTransferToken
/// @notice TEST ONLY: an ERC-20 that burns 1% of every transfer (not of mints), so the receiver gets less
///         than the amount sent. Settlement must refuse it.
contract FeeOnTransferToken is ERC20 {
    constructor() ERC20("Secureflow Fee Token", "SFFEE") {}

    /// @notice Mint `amount` to `to` (unrestricted: test only).
    /// @param to The receiver.
    /// @param amount The amount.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = value / 100;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
