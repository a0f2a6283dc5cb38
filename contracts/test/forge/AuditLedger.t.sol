// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AuditLedger} from "../../src/AuditLedger.sol";

import {AuditLedgerFixture} from "./AuditLedgerFixture.sol";

/// @title AuditLedgerTest
/// @notice Fuzz and unit tests of the AuditLedger's rules (issue 11): ids derived from creator, manifest hash
///         and salt (a squatter's job is another job), a job opens only with every party's consent, models and
///         closes only by the anchoring service for an open job, a close proves the job's last record.
contract AuditLedgerTest is AuditLedgerFixture {
    bytes32 internal constant MANIFEST = keccak256("manifest");
    bytes32 internal constant SALT = keccak256("salt");

    function setUp() public {
        _deployLedger();
    }

    /// @dev members[0] creates a job of members[0..count) with every consent; its id.
    function _openJob(uint256 count, bytes32 salt) internal returns (bytes32 jobId) {
        jobId = _jobId(members[0], MANIFEST, salt);
        bytes[] memory consents = new bytes[](count);
        for (uint256 i = 0; i < count; ++i) {
            consents[i] = _consent(i, jobId, MANIFEST);
        }
        vm.prank(members[0]);
        assertEq(ledger.createJob(MANIFEST, salt, _members(count), consents), jobId);
    }

    /// @dev Anchor a two-leaf batch: the record (jobId, seq, recordHash) and `filler`; the root.
    function _anchorRecord(bytes32 jobId, uint64 seq, bytes32 recordHash, bytes32 filler)
        internal
        returns (bytes32 root)
    {
        root = _hashPair(_leaf(jobId, seq, recordHash), filler);
        vm.prank(anchorService);
        ledger.anchorBatch(keccak256(abi.encode("batch", root)), root, 2);
    }

    function _proof(bytes32 node) internal pure returns (bytes32[] memory proof) {
        proof = new bytes32[](1);
        proof[0] = node;
    }

    // -------------------------------------------------------------------- ids

    function testFuzz_jobIdIsDerivedFromCreatorManifestAndSalt(address creator, bytes32 manifestHash, bytes32 salt)
        public
        view
    {
        assertEq(ledger.jobIdFor(creator, manifestHash, salt), _jobId(creator, manifestHash, salt));
    }

    /// @notice Whatever a co-party (or any member) sends, it cannot create the job another creator will create.
    function testFuzz_aSquatterGetsAnotherJob(uint256 squatterIndex, bytes32 bogusManifest, bytes32 salt) public {
        squatterIndex = bound(squatterIndex, 1, MEMBER_COUNT - 1);
        vm.assume(bogusManifest != bytes32(0));
        address squatter = members[squatterIndex];
        bytes32 victim = _jobId(members[0], MANIFEST, salt);
        address[] memory parties = new address[](2);
        (parties[0], parties[1]) = (squatter, members[0]);
        vm.prank(squatter);
        bytes32 squatted = ledger.createJob(bogusManifest, salt, parties, new bytes[](0));
        assertTrue(squatted != victim, "a squatter created the victim's job id");
        assertEq(uint8(ledger.getJob(victim).status), uint8(AuditLedger.JobStatus.None));
        assertEq(_openJob(2, salt), victim);
        AuditLedger.Job memory job = ledger.getJob(victim);
        assertEq(job.creator, members[0]);
        assertEq(job.manifestHash, MANIFEST);
    }

    function test_aReplayedCreateJobIsRefused() public {
        bytes32 jobId = _jobId(members[0], MANIFEST, SALT);
        bytes[] memory consents = new bytes[](2);
        consents[0] = _consent(0, jobId, MANIFEST);
        consents[1] = _consent(1, jobId, MANIFEST);
        // members[1] front-runs members[0]'s createJob with the same arguments: the consents are for
        // members[0]'s id, not for the one members[1] would create
        vm.expectRevert(
            abi.encodeWithSelector(AuditLedger.InvalidConsent.selector, _jobId(members[1], MANIFEST, SALT), members[0])
        );
        vm.prank(members[1]);
        ledger.createJob(MANIFEST, SALT, _members(2), consents);
    }

    // ---------------------------------------------------------------- consent

    function testFuzz_aJobOpensOnlyWithTheLastConsent(uint256 count, uint256 signedMask) public {
        count = bound(count, 1, MEMBER_COUNT);
        bytes32 jobId = _jobId(members[0], MANIFEST, SALT);
        bytes[] memory consents = new bytes[](count);
        uint256 missing = 0;
        for (uint256 i = 0; i < count; ++i) {
            if ((signedMask >> i) & 1 == 1) consents[i] = _consent(i, jobId, MANIFEST);
            else ++missing;
        }
        vm.prank(members[0]);
        ledger.createJob(MANIFEST, SALT, _members(count), consents);
        for (uint256 i = 0; i < count; ++i) {
            if (consents[i].length != 0) continue;
            assertEq(uint8(ledger.getJob(jobId).status), uint8(AuditLedger.JobStatus.Proposed));
            assertEq(ledger.missingConsents(jobId), missing);
            vm.expectRevert(abi.encodeWithSelector(AuditLedger.JobNotOpen.selector, jobId));
            vm.prank(anchorService);
            ledger.recordModel(jobId, keccak256("model"), 1, keccak256("weights"));
            ledger.submitConsent(jobId, members[i], _consent(i, jobId, MANIFEST));
            --missing;
        }
        assertEq(uint8(ledger.getJob(jobId).status), uint8(AuditLedger.JobStatus.Open));
        assertEq(ledger.missingConsents(jobId), 0);
        vm.expectRevert(abi.encodeWithSelector(AuditLedger.JobNotProposed.selector, jobId));
        ledger.submitConsent(jobId, members[0], _consent(0, jobId, MANIFEST));
    }

    function testFuzz_aConsentByAnotherKeyIsRefused(uint256 signer) public {
        signer = bound(signer, 0, MEMBER_COUNT - 1);
        vm.assume(signer != 1);
        bytes32 jobId = _jobId(members[0], MANIFEST, SALT);
        vm.prank(members[0]);
        ledger.createJob(MANIFEST, SALT, _members(2), new bytes[](0));
        vm.expectRevert(abi.encodeWithSelector(AuditLedger.InvalidConsent.selector, jobId, members[1]));
        ledger.submitConsent(jobId, members[1], _consent(signer, jobId, MANIFEST));
    }

    // ----------------------------------------------------------------- models

    function testFuzz_onlyTheAnchoringServiceRecordsModels(address caller) public {
        vm.assume(caller != anchorService);
        bytes32 jobId = _openJob(2, SALT);
        vm.expectRevert(abi.encodeWithSelector(AuditLedger.NotAnchorService.selector, caller));
        vm.prank(caller);
        ledger.recordModel(jobId, keccak256("model"), 1, bytes32(uint256(0x66)));
        assertEq(ledger.latestModelVersion(jobId, keccak256("model")), 0);
    }

    // ----------------------------------------------------------------- closes

    function testFuzz_onlyTheAnchoringServiceCloses(address caller) public {
        vm.assume(caller != anchorService);
        bytes32 jobId = _openJob(2, SALT);
        vm.expectRevert(abi.encodeWithSelector(AuditLedger.NotAnchorService.selector, caller));
        vm.prank(caller);
        ledger.closeJob(jobId, 0, bytes32(0), bytes32(0), new bytes32[](0), false);
        assertEq(uint8(ledger.getJob(jobId).status), uint8(AuditLedger.JobStatus.Open));
    }

    function testFuzz_aCloseProvesTheLastRecord(uint64 steps, uint64 claimed, bytes32 recordHash, bytes32 filler)
        public
    {
        steps = uint64(bound(steps, 1, 1_000_000));
        claimed = uint64(bound(claimed, 1, type(uint64).max));
        vm.assume(filler != bytes32(0));
        bytes32 jobId = _openJob(2, SALT);
        bytes32 root = _anchorRecord(jobId, steps - 1, recordHash, filler);
        if (claimed != steps) {
            vm.expectRevert(
                abi.encodeWithSelector(AuditLedger.FinalRecordNotProven.selector, jobId, claimed - 1, recordHash, root)
            );
            vm.prank(anchorService);
            ledger.closeJob(jobId, claimed, recordHash, root, _proof(filler), true);
            assertEq(uint8(ledger.getJob(jobId).status), uint8(AuditLedger.JobStatus.Open));
        }
        vm.prank(anchorService);
        ledger.closeJob(jobId, steps, recordHash, root, _proof(filler), true);
        AuditLedger.Job memory job = ledger.getJob(jobId);
        assertEq(uint8(job.status), uint8(AuditLedger.JobStatus.Closed));
        assertEq(job.stepCount, steps);
        assertEq(job.finalRoot, root);
    }

    function test_aCloseWithAnotherJobsRootIsRefused() public {
        bytes32 jobId = _openJob(2, SALT);
        bytes32 other = _openJob(3, keccak256("other salt"));
        bytes32 recordHash = keccak256("the other job's last record");
        bytes32 root = _anchorRecord(other, 2, recordHash, keccak256("filler"));
        vm.expectRevert(abi.encodeWithSelector(AuditLedger.FinalRecordNotProven.selector, jobId, 2, recordHash, root));
        vm.prank(anchorService);
        ledger.closeJob(jobId, 3, recordHash, root, _proof(keccak256("filler")), true);
    }

    function test_aCloseOfAProposedJobIsRefused() public {
        bytes32 jobId = _jobId(members[0], MANIFEST, SALT);
        vm.prank(members[0]);
        ledger.createJob(MANIFEST, SALT, _members(2), new bytes[](0));
        vm.expectRevert(abi.encodeWithSelector(AuditLedger.JobNotOpen.selector, jobId));
        vm.prank(anchorService);
        ledger.closeJob(jobId, 0, bytes32(0), bytes32(0), new bytes32[](0), false);
    }
}
