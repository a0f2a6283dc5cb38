// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title CallbackToken
/// @notice TEST ONLY: an ERC-20 that, like ERC-777 or ERC-1363 tokens, calls the receiving contract
///         (`tokensReceived(from, amount)`) on every transfer to a contract, so a payee can run code in
///         the middle of the payer's transfer (the token-callback reentrancy the Settlement must refuse).
///         A receiver without the hook is paid as by a plain ERC-20; a hook that reverts with data
///         reverts the transfer with it.
contract CallbackToken is ERC20 {
    constructor() ERC20("Secureflow Callback Token", "SFC") {}

    /// @notice Mint `amount` to `to` (unrestricted: test only).
    /// @param to The receiver.
    /// @param amount The amount.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (from == address(0) || to.code.length == 0) return;
        (bool ok, bytes memory result) =
            to.call(abi.encodeWithSignature("tokensReceived(address,uint256)", from, value));
        if (!ok && result.length > 0) {
            assembly {
                revert(add(result, 32), mload(result))
            }
        }
    }
}
