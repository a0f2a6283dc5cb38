// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ReentrantReceiver
/// @notice TEST ONLY: a contract member that forwards calls (to create jobs, approve weights, withdraw)
///         and, when it receives ETH, calls back into `target` with `reentryData` (e.g. a second
///         `withdrawEth`). It records whether the reentrant call succeeded and what it returned; with
///         `bubble` set it reverts with the reentrant call's revert data instead of swallowing it.
contract ReentrantReceiver {
    /// @notice The contract that is called back on receipt of ETH.
    address public target;
    /// @notice The calldata of the reentrant call (empty: no reentry).
    bytes public reentryData;
    /// @notice Whether a failed reentrant call makes the receipt revert.
    bool public bubble;
    /// @notice How many times ETH or callback tokens were received.
    uint256 public receipts;
    /// @notice How many reentrant calls were attempted.
    uint256 public attempts;
    /// @notice Whether the last reentrant call succeeded.
    bool public lastSucceeded;
    /// @notice What the last reentrant call returned (revert data on failure).
    bytes public lastReturn;

    /// @notice The forwarded call reverted with `data`.
    error ForwardFailed(bytes data);

    /// @notice Set what happens when ETH arrives.
    /// @param target_ The contract to call back.
    /// @param data The calldata of the reentrant call.
    /// @param bubble_ Revert with the reentrant call's revert data instead of swallowing it.
    function arm(address target_, bytes calldata data, bool bubble_) external {
        target = target_;
        reentryData = data;
        bubble = bubble_;
    }

    /// @notice Call `to` with `data` as this contract.
    /// @param to The contract to call.
    /// @param data The calldata.
    /// @return The return data.
    function forward(address to, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory result) = to.call(data);
        if (!ok) revert ForwardFailed(result);
        return result;
    }

    receive() external payable {
        _reenter();
    }

    /// @notice The hook a callback token (`CallbackToken`) calls on every transfer to this contract:
    ///         re-enters `target` like a receipt of ETH does.
    function tokensReceived(address, uint256) external {
        _reenter();
    }

    function _reenter() internal {
        ++receipts;
        if (reentryData.length == 0) return;
        ++attempts;
        (bool ok, bytes memory result) = target.call(reentryData);
        lastSucceeded = ok;
        lastReturn = result;
        if (!ok && bubble) {
            assembly {
                revert(add(result, 32), mload(result))
            }
        }
    }
}
