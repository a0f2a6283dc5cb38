// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SettlementFixture} from "./SettlementFixture.sol";
import {SettlementHandler} from "./SettlementHandler.sol";

/// @title SettlementInvariantTest
/// @notice Stateful fuzzing of Settlement's money invariants. setUp settles five jobs with 2, 3, 4, 5 and 3
///         parties (weights from the fuzz seed, plus the fixed 3334/3333/3333 split that a "remainder to one
///         member" rule gets wrong, and a split with a zero weight), sharing members across jobs, and leaves a
///         sixth job without weights. The handler then deposits ETH and an ERC-20, lets parties withdraw and
///         lets non-parties try to. After every call:
///         - per asset, the contract's balance is exactly the sum over jobs of deposits minus payouts, and the
///           contract's totals equal the handler's ghost totals;
///         - per job, asset and member: released <= entitlement, the entitlements are the D'Hondt split of the
///           deposits (checked by its defining property) and sum to exactly the deposits, and the released
///           amounts sum to totalReleased;
///         - entitlements never decreased after a deposit, members hold exactly what they were paid, and
///           accounts that are not parties of a job were never paid from it.
///         At the end of every run all parties withdraw everything and nothing may be left in the contract.
contract SettlementInvariantTest is SettlementFixture {
    address internal constant ETH = address(0);

    SettlementHandler internal handler;
    bytes32[] internal jobIds;
    address[] internal outsiders; // never a party of any job, never funded: must hold nothing, ever

    function setUp() public {
        _deployConsortium();
        uint256 seed = vm.randomUint();

        // 2 parties, fuzzed weights, four-leaf batch
        _addJob(_firstMembers(2), _bpsFromSeed(seed, 2), false, false);
        // 3 parties, 3334/3333/3333, one-leaf batch, weights given in reverse party order
        uint16[] memory thirds = new uint16[](3);
        (thirds[0], thirds[1], thirds[2]) = (3334, 3333, 3333);
        _addJob(_firstMembers(3), thirds, true, true);
        // 4 and 5 parties, fuzzed weights
        _addJob(_firstMembers(4), _bpsFromSeed(seed >> 64, 4), false, true);
        _addJob(_firstMembers(5), _bpsFromSeed(seed >> 128, 5), true, false);
        // 3 other parties (members 2..4), one of them with zero weight
        address[] memory lastThree = new address[](3);
        (lastThree[0], lastThree[1], lastThree[2]) = (members[2], members[3], members[4]);
        uint16[] memory withZero = new uint16[](3);
        (withZero[0], withZero[1], withZero[2]) = (0, 1, 9999);
        _addJob(lastThree, withZero, false, false);

        bytes32 unsettled = _createJob(keccak256("job without weights"), _firstMembers(2));

        address depositor = makeAddr("depositor");
        outsiders.push(depositor);
        outsiders.push(anchorService);
        outsiders.push(makeAddr("stranger"));
        address[] memory pool = new address[](outsiders.length + members.length);
        for (uint256 i = 0; i < outsiders.length; ++i) {
            pool[i] = outsiders[i];
        }
        for (uint256 i = 0; i < members.length; ++i) {
            pool[outsiders.length + i] = members[i]; // a member is an outsider of the jobs it is not a party of
        }

        handler = new SettlementHandler(settlement, token, jobIds, unsettled, pool, depositor);
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](6);
        selectors[0] = SettlementHandler.depositEth.selector;
        selectors[1] = SettlementHandler.depositToken.selector;
        selectors[2] = SettlementHandler.depositIntoUnsettledJob.selector;
        selectors[3] = SettlementHandler.withdrawEth.selector;
        selectors[4] = SettlementHandler.withdrawToken.selector;
        selectors[5] = SettlementHandler.outsiderWithdraws.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function _addJob(address[] memory parties, uint16[] memory bps, bool oneLeaf, bool reverseOrder) internal {
        bytes32 salt = keccak256(abi.encode("settled job", jobIds.length));
        bytes32 jobId = reverseOrder
            ? _settledJob(salt, parties, _reversed(parties), _reversed(bps), oneLeaf)
            : _settledJob(salt, parties, parties, bps, oneLeaf);
        jobIds.push(jobId);
    }

    function _assets() internal view returns (address[2] memory) {
        return [ETH, address(token)];
    }

    function _balance(address asset, address account) internal view returns (uint256) {
        return asset == ETH ? account.balance : token.balanceOf(account);
    }

    // ------------------------------------------------------------ invariants

    /// @notice Per asset: held == sum(deposited - released) over jobs; contract totals == ghost totals.
    function invariant_conservation() public view {
        address[2] memory assets = _assets();
        for (uint256 a = 0; a < 2; ++a) {
            uint256 held = 0;
            for (uint256 j = 0; j < jobIds.length; ++j) {
                bytes32 jobId = jobIds[j];
                uint256 deposited = settlement.totalDeposited(jobId, assets[a]);
                uint256 paid = settlement.totalReleased(jobId, assets[a]);
                assertEq(deposited, handler.ghostDeposited(jobId, assets[a]), "totalDeposited != ghost deposits");
                assertEq(paid, handler.ghostReleased(jobId, assets[a]), "totalReleased != ghost payouts");
                assertLe(paid, deposited, "a job paid out more than was deposited");
                held += deposited - paid;
            }
            assertEq(_balance(assets[a], address(settlement)), held, "balance != sum of deposits minus payouts");
            assertEq(
                settlement.totalDeposited(handler.unsettledJob(), assets[a]), 0, "a job without weights got revenue"
            );
        }
    }

    /// @notice Per job, asset and member: released <= entitlement; entitlements are the D'Hondt split of the
    ///         deposits and sum to them; released amounts sum to totalReleased.
    function invariant_entitlements() public view {
        address[2] memory assets = _assets();
        for (uint256 j = 0; j < jobIds.length; ++j) {
            bytes32 jobId = jobIds[j];
            (address[] memory weighted, uint16[] memory bps,) = settlement.weightsOf(jobId);
            for (uint256 a = 0; a < 2; ++a) {
                uint256 deposited = settlement.totalDeposited(jobId, assets[a]);
                uint256[] memory alloc = settlement.entitlements(jobId, assets[a]);
                assertEq(_dhondtViolation(bps, alloc, deposited), "", "entitlements break the rounding rule");
                uint256 releasedSum = 0;
                for (uint256 i = 0; i < weighted.length; ++i) {
                    uint256 entitled = settlement.entitlement(jobId, assets[a], weighted[i]);
                    uint256 paid = settlement.released(jobId, assets[a], weighted[i]);
                    assertEq(entitled, alloc[i], "entitlement() != entitlements()[i]");
                    assertLe(paid, entitled, "a member was paid more than its entitlement");
                    assertEq(settlement.releasable(jobId, assets[a], weighted[i]), entitled - paid, "releasable");
                    releasedSum += paid;
                }
                assertEq(releasedSum, settlement.totalReleased(jobId, assets[a]), "sum of released != totalReleased");
            }
        }
    }

    /// @notice Each member holds exactly what it was paid over all its jobs; entitlements never decreased.
    function invariant_membersHoldWhatTheyWerePaid() public view {
        address[2] memory assets = _assets();
        for (uint256 m = 0; m < members.length; ++m) {
            for (uint256 a = 0; a < 2; ++a) {
                uint256 paid = 0;
                for (uint256 j = 0; j < jobIds.length; ++j) {
                    paid += settlement.released(jobIds[j], assets[a], members[m]);
                }
                assertEq(_balance(assets[a], members[m]), paid, "a member holds other than what it was paid");
            }
        }
    }

    /// @notice Accounts that are not parties of a job are never paid from it.
    function invariant_nonPartiesGetNothing() public view {
        assertEq(handler.outsiderPayouts(), 0, "a non-party was paid");
        address[2] memory assets = _assets();
        for (uint256 o = 0; o < outsiders.length; ++o) {
            for (uint256 a = 0; a < 2; ++a) {
                assertEq(_balance(assets[a], outsiders[o]), 0, "an outsider holds revenue");
            }
        }
        for (uint256 j = 0; j < jobIds.length; ++j) {
            for (uint256 m = 0; m < members.length; ++m) {
                if (handler.isParty(jobIds[j], members[m])) continue;
                for (uint256 a = 0; a < 2; ++a) {
                    assertEq(settlement.released(jobIds[j], assets[a], members[m]), 0, "a non-party released");
                    assertEq(settlement.entitlement(jobIds[j], assets[a], members[m]), 0, "a non-party is entitled");
                }
            }
        }
    }

    /// @notice Every expectation the handler checked held (exact payouts, expected revert reasons, monotone
    ///         entitlements).
    function invariant_handlerExpectationsHeld() public view {
        assertEq(handler.violations(), 0, handler.firstViolation());
    }

    /// @notice At the end of every run, everyone withdraws everything: nothing may be left in the contract.
    function afterInvariant() external {
        address[2] memory assets = _assets();
        for (uint256 j = 0; j < jobIds.length; ++j) {
            (address[] memory weighted,,) = settlement.weightsOf(jobIds[j]);
            for (uint256 i = 0; i < weighted.length; ++i) {
                _withdrawAll(jobIds[j], ETH, weighted[i]);
                _withdrawAll(jobIds[j], address(token), weighted[i]);
            }
            for (uint256 a = 0; a < 2; ++a) {
                assertEq(
                    settlement.totalReleased(jobIds[j], assets[a]),
                    settlement.totalDeposited(jobIds[j], assets[a]),
                    "after everyone withdrew, a job's payouts differ from its deposits"
                );
            }
        }
        assertEq(address(settlement).balance, 0, "ETH stuck in the contract after everyone withdrew");
        assertEq(token.balanceOf(address(settlement)), 0, "tokens stuck in the contract after everyone withdrew");
    }

    function _withdrawAll(bytes32 jobId, address asset, address member) internal {
        uint256 releasable = settlement.releasable(jobId, asset, member);
        if (releasable == 0) return;
        uint256 before = _balance(asset, member);
        vm.prank(member);
        if (asset == ETH) {
            try settlement.withdrawEth(jobId) {}
            catch {
                assertTrue(false, "at the end of a run, a party could not withdraw its releasable ETH");
            }
        } else {
            try settlement.withdrawToken(jobId, token) {}
            catch {
                assertTrue(false, "at the end of a run, a party could not withdraw its releasable tokens");
            }
        }
        assertEq(_balance(asset, member) - before, releasable, "a final withdrawal paid other than releasable");
    }
}
