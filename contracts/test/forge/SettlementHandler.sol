// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

import {Settlement} from "../../src/Settlement.sol";
import {TestToken} from "../../src/test/TestToken.sol";

/// @title SettlementHandler
/// @notice The actions of the Settlement invariant campaign, with bounded inputs: deposits of ETH and of an
///         ERC-20 into the settled jobs (big and tiny amounts, so the rounding remainder matters), deposits into
///         a job whose weights are not set (must revert), withdrawals by a random party of a job, and
///         withdrawal attempts by accounts that are not parties of the job (other consortium members, the
///         depositor, the anchoring service, a stranger). Ghost variables keep what was deposited and paid out
///         per job and asset, the last entitlement seen per member (entitlements must never decrease), and
///         every expectation that failed. No action reverts: expected reverts are caught and checked.
contract SettlementHandler is CommonBase, StdUtils {
    address public constant ETH = address(0);

    Settlement public immutable settlement;
    TestToken public immutable token;
    bytes32 public immutable unsettledJob;
    address public immutable depositor;

    bytes32[] private _jobs;
    address[] private _outsiderPool;

    mapping(bytes32 jobId => mapping(address asset => uint256)) public ghostDeposited;
    mapping(bytes32 jobId => mapping(address asset => uint256)) public ghostReleased;
    mapping(bytes32 jobId => mapping(address asset => mapping(address member => uint256))) public lastEntitlement;
    /// @notice What accounts that are not parties of a job were paid from it (must stay zero).
    uint256 public outsiderPayouts;
    /// @notice How many expectations failed, and the first one.
    uint256 public violations;
    string public firstViolation;
    /// @notice Calls per action, and how many withdrawals actually paid something.
    mapping(bytes4 selector => uint256) public calls;
    uint256 public paidWithdrawals;

    constructor(
        Settlement settlement_,
        TestToken token_,
        bytes32[] memory jobs_,
        bytes32 unsettledJob_,
        address[] memory outsiderPool_,
        address depositor_
    ) {
        settlement = settlement_;
        token = token_;
        _jobs = jobs_;
        unsettledJob = unsettledJob_;
        _outsiderPool = outsiderPool_;
        depositor = depositor_;
    }

    // --------------------------------------------------------------- actions

    function depositEth(uint256 jobSeed, uint256 amountSeed) external {
        calls[this.depositEth.selector]++;
        bytes32 jobId = _job(jobSeed);
        uint256 amount = _amount(amountSeed);
        vm.deal(depositor, amount);
        vm.prank(depositor);
        settlement.depositEth{value: amount}(jobId);
        ghostDeposited[jobId][ETH] += amount;
        _checkEntitlementsGrew(jobId, ETH);
    }

    function depositToken(uint256 jobSeed, uint256 amountSeed) external {
        calls[this.depositToken.selector]++;
        bytes32 jobId = _job(jobSeed);
        uint256 amount = _amount(amountSeed);
        token.mint(depositor, amount);
        vm.startPrank(depositor);
        token.approve(address(settlement), amount);
        settlement.depositToken(jobId, token, amount);
        vm.stopPrank();
        ghostDeposited[jobId][address(token)] += amount;
        _checkEntitlementsGrew(jobId, address(token));
    }

    function depositIntoUnsettledJob(uint256 amountSeed, bool eth) external {
        calls[this.depositIntoUnsettledJob.selector]++;
        uint256 amount = _amount(amountSeed);
        bytes memory expected = abi.encodeWithSelector(Settlement.WeightsNotSet.selector, unsettledJob);
        if (eth) {
            vm.deal(depositor, amount);
            vm.prank(depositor);
            try settlement.depositEth{value: amount}(unsettledJob) {
                _violation("an ETH deposit into a job without weights succeeded");
            } catch (bytes memory reason) {
                _expectReason(reason, expected, "ETH deposit into a job without weights");
            }
            vm.deal(depositor, 0);
        } else {
            token.mint(depositor, amount);
            vm.startPrank(depositor);
            token.approve(address(settlement), amount);
            try settlement.depositToken(unsettledJob, token, amount) {
                _violation("a token deposit into a job without weights succeeded");
            } catch (bytes memory reason) {
                _expectReason(reason, expected, "token deposit into a job without weights");
            }
            token.approve(address(settlement), 0);
            require(token.transfer(address(0xdead), amount), "burning the refused deposit failed"); // hold nothing
            vm.stopPrank();
        }
    }

    function withdrawEth(uint256 jobSeed, uint256 memberSeed) external {
        calls[this.withdrawEth.selector]++;
        bytes32 jobId = _job(jobSeed);
        address member = _member(jobId, memberSeed);
        uint256 releasable = settlement.releasable(jobId, ETH, member);
        uint256 before = member.balance;
        vm.prank(member);
        try settlement.withdrawEth(jobId) returns (uint256 amount) {
            _checkPaid(jobId, ETH, member, releasable, amount, member.balance - before);
        } catch (bytes memory reason) {
            _checkNothingToRelease(jobId, ETH, member, releasable, reason);
        }
    }

    function withdrawToken(uint256 jobSeed, uint256 memberSeed) external {
        calls[this.withdrawToken.selector]++;
        bytes32 jobId = _job(jobSeed);
        address member = _member(jobId, memberSeed);
        uint256 releasable = settlement.releasable(jobId, address(token), member);
        uint256 before = token.balanceOf(member);
        vm.prank(member);
        try settlement.withdrawToken(jobId, token) returns (uint256 amount) {
            _checkPaid(jobId, address(token), member, releasable, amount, token.balanceOf(member) - before);
        } catch (bytes memory reason) {
            _checkNothingToRelease(jobId, address(token), member, releasable, reason);
        }
    }

    function outsiderWithdraws(uint256 jobSeed, uint256 outsiderSeed, bool eth) external {
        calls[this.outsiderWithdraws.selector]++;
        bytes32 jobId = _job(jobSeed);
        address outsider = _outsider(jobId, outsiderSeed);
        if (outsider == address(0)) return; // every pooled account is a party of this job
        vm.prank(outsider);
        if (eth) {
            try settlement.withdrawEth(jobId) returns (uint256 amount) {
                outsiderPayouts += amount;
                _violation("an account that is not a party withdrew ETH");
            } catch (bytes memory reason) {
                _expectReason(reason, _notMember(jobId, outsider), "ETH withdrawal by a non-party");
            }
        } else {
            try settlement.withdrawToken(jobId, token) returns (uint256 amount) {
                outsiderPayouts += amount;
                _violation("an account that is not a party withdrew tokens");
            } catch (bytes memory reason) {
                _expectReason(reason, _notMember(jobId, outsider), "token withdrawal by a non-party");
            }
        }
    }

    // ----------------------------------------------------------------- views

    function jobs() external view returns (bytes32[] memory) {
        return _jobs;
    }

    function outsiderPool() external view returns (address[] memory) {
        return _outsiderPool;
    }

    /// @notice Whether `account` is one of the job's weighted members.
    function isParty(bytes32 jobId, address account) public view returns (bool) {
        (address[] memory members,,) = settlement.weightsOf(jobId);
        for (uint256 i = 0; i < members.length; ++i) {
            if (members[i] == account) return true;
        }
        return false;
    }

    // -------------------------------------------------------------- internal

    function _job(uint256 seed) private view returns (bytes32) {
        return _jobs[bound(seed, 0, _jobs.length - 1)];
    }

    function _member(bytes32 jobId, uint256 seed) private view returns (address) {
        (address[] memory members,,) = settlement.weightsOf(jobId);
        return members[bound(seed, 0, members.length - 1)];
    }

    /// @dev A pooled account that is not a party of `jobId` (zero if there is none).
    function _outsider(bytes32 jobId, uint256 seed) private view returns (address) {
        uint256 count = _outsiderPool.length;
        uint256 start = bound(seed, 0, count - 1);
        for (uint256 k = 0; k < count; ++k) {
            address candidate = _outsiderPool[(start + k) % count];
            if (!isParty(jobId, candidate)) return candidate;
        }
        return address(0);
    }

    /// @dev One amount in four is tiny (1..7 units, below the member count: all rounding remainder), the
    ///      others up to 10^24 (a million tokens of 18 decimals).
    function _amount(uint256 seed) private pure returns (uint256) {
        return seed % 4 == 0 ? bound(seed, 1, 7) : bound(seed, 1, 1e24);
    }

    function _checkEntitlementsGrew(bytes32 jobId, address asset) private {
        (address[] memory members,,) = settlement.weightsOf(jobId);
        for (uint256 i = 0; i < members.length; ++i) {
            uint256 now_ = settlement.entitlement(jobId, asset, members[i]);
            if (now_ < lastEntitlement[jobId][asset][members[i]]) {
                _violation("an entitlement decreased after a deposit");
            }
            lastEntitlement[jobId][asset][members[i]] = now_;
        }
    }

    function _checkPaid(
        bytes32 jobId,
        address asset,
        address member,
        uint256 releasable,
        uint256 amount,
        uint256 received
    ) private {
        if (releasable == 0) _violation("a withdrawal succeeded with nothing releasable");
        if (amount != releasable) _violation("a withdrawal paid other than the releasable amount");
        if (received != amount) _violation("the member received other than the amount withdrawn");
        if (settlement.releasable(jobId, asset, member) != 0) _violation("something is releasable after a withdrawal");
        ghostReleased[jobId][asset] += received;
        paidWithdrawals++;
    }

    function _checkNothingToRelease(
        bytes32 jobId,
        address asset,
        address member,
        uint256 releasable,
        bytes memory reason
    ) private {
        if (releasable != 0) _violation("a withdrawal of a positive releasable amount reverted");
        _expectReason(
            reason,
            abi.encodeWithSelector(Settlement.NothingToRelease.selector, jobId, asset, member),
            "withdrawal with nothing releasable"
        );
    }

    function _notMember(bytes32 jobId, address account) private pure returns (bytes memory) {
        return abi.encodeWithSelector(Settlement.NotSettlementMember.selector, jobId, account);
    }

    function _expectReason(bytes memory reason, bytes memory expected, string memory what) private {
        if (keccak256(reason) != keccak256(expected)) _violation(string.concat(what, " reverted with another error"));
    }

    function _violation(string memory what) private {
        if (violations == 0) firstViolation = what;
        violations++;
    }
}
