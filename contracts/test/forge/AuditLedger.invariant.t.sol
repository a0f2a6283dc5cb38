// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AuditLedger} from "../../src/AuditLedger.sol";

import {AuditLedgerFixture} from "./AuditLedgerFixture.sol";
import {AuditLedgerHandler} from "./AuditLedgerHandler.sol";

/// @title AuditLedgerInvariantTest
/// @notice Stateful fuzzing of the AuditLedger's rules. The handler lets members create jobs with some or all
///         consents, relay genuine and forged consents, squat each other's job ids, and lets the anchoring
///         service anchor step records, record models and close jobs, while parties and outsiders try to
///         record models and close jobs, and closes are tried with wrong step counts and other jobs' records.
///         After every call:
///         - every job's id is keccak256(abi.encode(creator, manifestHash, salt)) of what its creator sent, and
///           its creator and manifest hash are still those;
///         - a job is Open, Closed or Failed only if every party consented; a Proposed job counts exactly its
///           missing consents;
///         - models exist only for jobs that were open, exactly the versions the anchoring service recorded;
///         - a closed job holds the step count and root of the one close that went through, and its last
///           record's leaf is proven in that root;
///         - no refused action went through and every refusal carried its exact custom error.
contract AuditLedgerInvariantTest is AuditLedgerFixture {
    AuditLedgerHandler internal handler;

    function setUp() public {
        _deployLedger();
        handler = new AuditLedgerHandler(ledger, anchorService, outsider, members, memberKeys);
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](6);
        selectors[0] = AuditLedgerHandler.createJob.selector;
        selectors[1] = AuditLedgerHandler.submitConsent.selector;
        selectors[2] = AuditLedgerHandler.squat.selector;
        selectors[3] = AuditLedgerHandler.anchorStep.selector;
        selectors[4] = AuditLedgerHandler.recordModel.selector;
        selectors[5] = AuditLedgerHandler.closeJob.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function invariant_jobIdsAreBoundToTheirCreator() public view {
        for (uint256 j = 0; j < handler.jobCount(); ++j) {
            AuditLedgerHandler.GhostJob memory g = handler.ghost(j);
            assertEq(g.id, _jobId(g.creator, g.manifestHash, g.salt), "job id is not the rule's");
            assertEq(g.id, ledger.jobIdFor(g.creator, g.manifestHash, g.salt), "jobIdFor differs from the rule");
            AuditLedger.Job memory job = ledger.getJob(g.id);
            assertEq(job.creator, g.creator, "a job changed creator");
            assertEq(job.manifestHash, g.manifestHash, "a job changed manifest");
            address[] memory parties = ledger.jobParties(g.id);
            assertEq(parties.length, g.partyIndexes.length, "a job changed parties");
            for (uint256 i = 0; i < parties.length; ++i) {
                assertEq(parties[i], handler.memberAt(g.partyIndexes[i]), "a job changed parties");
            }
        }
    }

    function invariant_openOnlyWithEveryConsent() public view {
        for (uint256 j = 0; j < handler.jobCount(); ++j) {
            AuditLedgerHandler.GhostJob memory g = handler.ghost(j);
            AuditLedger.JobStatus status = ledger.getJob(g.id).status;
            uint256 missing = 0;
            for (uint256 i = 0; i < g.partyIndexes.length; ++i) {
                bool consented = ledger.hasConsented(g.id, handler.memberAt(g.partyIndexes[i]));
                assertEq(consented, g.consented[i], "a consent was recorded that was never given (or lost)");
                if (!consented) ++missing;
            }
            if (missing == 0) {
                assertTrue(status != AuditLedger.JobStatus.Proposed, "a fully consented job is not open");
            } else {
                assertEq(uint8(status), uint8(AuditLedger.JobStatus.Proposed), "a job opened without consent");
            }
            assertEq(ledger.missingConsents(g.id), missing, "missingConsents is wrong");
            assertEq(g.opened, missing == 0, "the handler's view of the job differs");
        }
    }

    function invariant_modelsOnlyByTheServiceForOpenJobs() public view {
        for (uint256 j = 0; j < handler.jobCount(); ++j) {
            AuditLedgerHandler.GhostJob memory g = handler.ghost(j);
            uint32 latest = ledger.latestModelVersion(g.id, keccak256("model"));
            assertEq(latest, g.models, "model versions differ from those the anchoring service recorded");
            if (!g.opened) assertEq(latest, 0, "a model was recorded for a job that never opened");
        }
    }

    function invariant_closesProveTheLastRecord() public view {
        for (uint256 j = 0; j < handler.jobCount(); ++j) {
            AuditLedgerHandler.GhostJob memory g = handler.ghost(j);
            AuditLedger.Job memory job = ledger.getJob(g.id);
            bool finished = job.status == AuditLedger.JobStatus.Closed || job.status == AuditLedger.JobStatus.Failed;
            assertEq(finished, g.closed, "a job was closed without a valid close (or not closed)");
            if (!finished) {
                assertEq(job.stepCount, 0, "an unclosed job has a step count");
                assertEq(job.finalRoot, bytes32(0), "an unclosed job has a final root");
                continue;
            }
            assertTrue(g.opened, "a job that never opened was closed");
            assertEq(job.stepCount, g.closedSteps, "the step count is not the closed job's");
            if (job.stepCount == 0) {
                assertEq(job.finalRoot, bytes32(0), "a job without steps has a final root");
                continue;
            }
            uint64 last = job.stepCount - 1;
            assertEq(job.finalRoot, g.roots[last], "the final root is not the batch of the last record");
            bytes32[] memory proof = new bytes32[](1);
            proof[0] = g.fillers[last];
            assertTrue(ledger.verify(_leaf(g.id, last, g.recordHashes[last]), proof, job.finalRoot), "not proven");
        }
    }

    function invariant_handlerExpectationsHeld() public view {
        assertEq(handler.unexpected(), 0, handler.lastUnexpected());
    }
}
