// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Settlement} from "../../src/Settlement.sol";
import {FeeOnTransferToken} from "../../src/test/FeeOnTransferToken.sol";

import {SettlementFixture} from "./SettlementFixture.sol";

/// @title SettlementTest
/// @notice Denials (each with its exact custom error) and stateless fuzz tests of Settlement's rounding:
///         fuzzed weights for 2..5 parties, two deposits, then everyone withdraws.
contract SettlementTest is SettlementFixture {
    bytes32 internal constant JOB_SALT = keccak256("settlement unit test job");

    /// @dev The id of the job `parties[0]` (members[0], as in every test here) creates with JOB_SALT.
    bytes32 internal job;
    address[] internal parties;
    uint16[] internal bps;

    function setUp() public {
        _deployConsortium();
        parties = _firstMembers(3);
        job = ledger.jobIdFor(members[0], keccak256(abi.encode("manifest", JOB_SALT)), JOB_SALT);
        bps.push(5000);
        bps.push(3000);
        bps.push(2000);
    }

    function _settle() internal {
        _settledJob(JOB_SALT, parties, parties, bps, false);
    }

    function _noRecord() internal pure returns (Settlement.RecordProof memory record) {
        record.proof = new bytes32[](0);
    }

    // --------------------------------------------------------------- denials

    function test_depositBeforeWeightsReverts() public {
        _createJob(JOB_SALT, parties);
        vm.expectRevert(abi.encodeWithSelector(Settlement.WeightsNotSet.selector, job));
        settlement.depositEth{value: 1 ether}(job);
        token.mint(address(this), 1 ether);
        token.approve(address(settlement), 1 ether);
        vm.expectRevert(abi.encodeWithSelector(Settlement.WeightsNotSet.selector, job));
        settlement.depositToken(job, token, 1 ether);
    }

    function testFuzz_nonPartyCannotWithdraw(address who) public {
        vm.assume(who != address(vm));
        for (uint256 i = 0; i < parties.length; ++i) {
            vm.assume(who != parties[i]);
        }
        _settle();
        settlement.depositEth{value: 1 ether}(job);
        token.mint(address(this), 1 ether);
        token.approve(address(settlement), 1 ether);
        settlement.depositToken(job, token, 1 ether);

        vm.expectRevert(abi.encodeWithSelector(Settlement.NotSettlementMember.selector, job, who));
        vm.prank(who);
        settlement.withdrawEth(job);
        vm.expectRevert(abi.encodeWithSelector(Settlement.NotSettlementMember.selector, job, who));
        vm.prank(who);
        settlement.withdrawToken(job, token);
        assertEq(settlement.entitlement(job, address(0), who), 0);
    }

    function test_secondWithdrawalHasNothingToRelease() public {
        _settle();
        settlement.depositEth{value: 1 ether}(job);
        vm.prank(parties[1]);
        assertEq(settlement.withdrawEth(job), 0.3 ether);
        vm.expectRevert(abi.encodeWithSelector(Settlement.NothingToRelease.selector, job, address(0), parties[1]));
        vm.prank(parties[1]);
        settlement.withdrawEth(job);
    }

    function test_weightsAreSetOnce() public {
        _settle();
        vm.expectRevert(abi.encodeWithSelector(Settlement.WeightsAlreadySet.selector, job));
        vm.prank(parties[0]);
        settlement.setWeights(job, parties, bps, _noRecord(), new bytes[](0));
    }

    function test_nonPartyCannotSetWeights() public {
        _createJob(JOB_SALT, parties);
        vm.expectRevert(abi.encodeWithSelector(Settlement.NotJobParty.selector, job, members[4]));
        vm.prank(members[4]);
        settlement.setWeights(job, parties, bps, _noRecord(), new bytes[](0));
    }

    function testFuzz_weightsMustSumTo10000(uint16 a, uint16 b, uint16 c) public {
        uint256 sum = uint256(a) + b + c;
        vm.assume(sum != TOTAL_BPS);
        _createJob(JOB_SALT, parties);
        uint16[] memory wrong = new uint16[](3);
        (wrong[0], wrong[1], wrong[2]) = (a, b, c);
        vm.expectRevert(abi.encodeWithSelector(Settlement.InvalidWeightsSum.selector, sum));
        vm.prank(parties[0]);
        settlement.setWeights(job, parties, wrong, _noRecord(), new bytes[](0));
    }

    function test_membersMustBeTheJobParties() public {
        _createJob(JOB_SALT, parties);
        address[] memory others = _firstMembers(3);
        others[2] = members[4];
        vm.expectRevert(abi.encodeWithSelector(Settlement.MembersNotJobParties.selector, job));
        vm.prank(parties[0]);
        settlement.setWeights(job, others, bps, _noRecord(), new bytes[](0));
    }

    function test_unanchoredRecordIsRejected() public {
        _createJob(JOB_SALT, parties);
        bytes32 recordHash = keccak256("a record that was never anchored");
        Settlement.RecordProof memory record = _noRecord();
        record.recordHash = recordHash;
        record.seq = 3;
        record.root = _leaf(job, 3, recordHash); // a one-leaf root, but not anchored
        vm.expectRevert(abi.encodeWithSelector(Settlement.RecordNotAnchored.selector, job, record.root, record.root));
        vm.prank(parties[0]);
        settlement.setWeights(job, parties, bps, record, new bytes[](0));
    }

    function test_forgedApprovalIsRejected() public {
        _createJob(JOB_SALT, parties);
        bytes32 hash_ = keccak256(abi.encode(job, parties, bps));
        Settlement.RecordProof memory record = _anchorContributionRecord(job, keccak256("contribution"), false);
        bytes32 digest = settlement.approvalDigest(job, hash_, _leaf(job, record.seq, record.recordHash));
        bytes[] memory signatures = new bytes[](3);
        signatures[0] = _sign(members[4], digest); // a member, but not parties[0]
        signatures[1] = _sign(parties[1], digest);
        signatures[2] = _sign(parties[2], digest);
        vm.expectRevert(abi.encodeWithSelector(Settlement.InvalidApproval.selector, job, parties[0]));
        vm.prank(parties[0]);
        settlement.setWeights(job, parties, bps, record, signatures);
    }

    function test_missingApprovalIsRejected() public {
        _createJob(JOB_SALT, parties);
        bytes32 hash_ = keccak256(abi.encode(job, parties, bps));
        Settlement.RecordProof memory record = _anchorContributionRecord(job, keccak256("contribution"), true);
        bytes32 leaf = _leaf(job, record.seq, record.recordHash);
        vm.prank(parties[0]);
        settlement.approveWeights(job, hash_, leaf);
        vm.expectRevert(abi.encodeWithSelector(Settlement.MissingApproval.selector, job, parties[1]));
        vm.prank(parties[0]);
        settlement.setWeights(job, parties, bps, record, new bytes[](0));
    }

    function test_feeOnTransferTokenIsRefused() public {
        _settle();
        FeeOnTransferToken feeToken = new FeeOnTransferToken();
        feeToken.mint(address(this), 1000);
        feeToken.approve(address(settlement), 1000);
        vm.expectRevert(abi.encodeWithSelector(Settlement.UnsupportedToken.selector, address(feeToken), 1000, 990));
        settlement.depositToken(job, feeToken, 1000);
    }

    // ------------------------------------------------------------- rounding

    /// @notice Fuzzed weights for 2..5 parties and two deposits (tiny or large): the entitlements are the
    ///         D'Hondt split each time, none decreases with the second deposit, and once everyone has
    ///         withdrawn the contract holds nothing.
    function testFuzz_roundingIsExactAndMonotone(uint256 seed, uint256 count, uint256 first, uint256 second) public {
        count = bound(count, 2, MEMBER_COUNT);
        first = first % 3 == 0 ? bound(first, 1, 10) : bound(first, 1, 1e30);
        second = second % 3 == 0 ? bound(second, 1, 10) : bound(second, 1, 1e30);
        address[] memory jobParties = _firstMembers(count);
        uint16[] memory weights = _bpsFromSeed(seed, count);
        _settledJob(JOB_SALT, jobParties, jobParties, weights, seed % 2 == 0);

        vm.deal(address(this), first + second);
        settlement.depositEth{value: first}(job);
        uint256[] memory before = settlement.entitlements(job, address(0));
        assertEq(_dhondtViolation(weights, before, first), "");
        settlement.depositEth{value: second}(job);
        uint256[] memory afterwards = settlement.entitlements(job, address(0));
        assertEq(_dhondtViolation(weights, afterwards, first + second), "");

        for (uint256 i = 0; i < count; ++i) {
            assertGe(afterwards[i], before[i], "an entitlement decreased");
            if (afterwards[i] == 0) continue;
            vm.prank(jobParties[i]);
            assertEq(settlement.withdrawEth(job), afterwards[i]);
            assertEq(jobParties[i].balance, afterwards[i]);
        }
        assertEq(address(settlement).balance, 0, "ETH left after everyone withdrew");
    }
}
