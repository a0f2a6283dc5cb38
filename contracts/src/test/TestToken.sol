// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestToken
/// @notice TEST ONLY: a plain ERC-20 that anyone can mint, for settlement tests on a dev chain.
contract TestToken is ERC20 {
    constructor() ERC20("Secureflow Test Token", "SFT") {}

    /// @notice Mint `amount` to `to` (unrestricted: test only).
    /// @param to The receiver.
    /// @param amount The amount.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
