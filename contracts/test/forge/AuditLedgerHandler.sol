// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {AuditLedger} from "../../src/AuditLedger.sol";

/// @title AuditLedgerHandler
/// @notice What members, outsiders and the anchoring service can do to the audit ledger, for stateful fuzzing:
///         create jobs with some or all consents, relay consents (genuine or by the wrong key), squat another
///         creator's job id, anchor a job's next step record, record models and close jobs, each either as the
///         rules allow or as an attack. An action never reverts: every expected refusal is caught and checked
///         to be the exact custom error; anything else (an attack that went through, another error) is counted
///         in `unexpected`, which an invariant requires to stay zero. Ghost state records what the rules say
///         the ledger must hold.
contract AuditLedgerHandler is Test {
    uint256 internal constant MAX_JOBS = 16;
    bytes32 internal constant MODEL = keccak256("model");

    /// @notice What the handler did to one job, and what the ledger must therefore say about it.
    struct GhostJob {
        bytes32 id;
        address creator;
        bytes32 manifestHash;
        bytes32 salt;
        uint256[] partyIndexes;
        bool[] consented;
        bool opened;
        uint32 models;
        // step records anchored (seq = index), each alone with a filler leaf in a two-leaf batch
        bytes32[] recordHashes;
        bytes32[] fillers;
        bytes32[] roots;
        // set by the one close that went through
        bool closed;
        uint64 closedSteps;
    }

    AuditLedger internal immutable ledger;
    address internal immutable anchorService;
    address internal immutable outsider;
    address[] internal members;
    uint256[] internal keys;

    GhostJob[] internal ghosts;
    mapping(bytes32 jobId => bool) public known;

    /// @notice Outcomes that broke a rule (an attack that went through, or a refusal with the wrong error).
    uint256 public unexpected;
    string public lastUnexpected;

    constructor(
        AuditLedger ledger_,
        address anchorService_,
        address outsider_,
        address[] memory members_,
        uint256[] memory keys_
    ) {
        ledger = ledger_;
        anchorService = anchorService_;
        outsider = outsider_;
        members = members_;
        keys = keys_;
    }

    // ------------------------------------------------------------------ views for the invariants

    function jobCount() external view returns (uint256) {
        return ghosts.length;
    }

    function ghost(uint256 index) external view returns (GhostJob memory) {
        return ghosts[index];
    }

    function memberAt(uint256 index) external view returns (address) {
        return members[index];
    }

    // ------------------------------------------------------------------ actions

    /// @notice A member creates a job of 1..5 parties (itself among them) with each party's consent or not.
    function createJob(uint256 seed) external {
        if (ghosts.length >= MAX_JOBS) return;
        uint256 creator = seed % members.length;
        uint256 count = 1 + (seed >> 8) % members.length;
        uint256[] memory indexes = new uint256[](count);
        indexes[0] = creator;
        for (uint256 i = 1; i < count; ++i) {
            indexes[i] = (creator + i) % members.length;
        }
        bytes32 manifestHash = keccak256(abi.encode("manifest", seed));
        bytes32 salt = keccak256(abi.encode("salt", seed, ghosts.length));
        bytes32 jobId = keccak256(abi.encode(members[creator], manifestHash, salt));
        address[] memory parties = new address[](count);
        bytes[] memory consents = new bytes[](count);
        bool[] memory consented = new bool[](count);
        bool all = true;
        for (uint256 i = 0; i < count; ++i) {
            parties[i] = members[indexes[i]];
            consented[i] = (seed >> (16 + i)) & 3 != 0; // mostly signed
            if (consented[i]) consents[i] = _sign(indexes[i], jobId, manifestHash);
            all = all && consented[i];
        }
        vm.prank(members[creator]);
        bytes32 created = ledger.createJob(manifestHash, salt, parties, consents);
        if (created != jobId) _unexpected("createJob returned another id than the rule");
        _remember(jobId, members[creator], manifestHash, salt, indexes, consented, all);
    }

    /// @notice Someone relays a missing consent of a proposed job: the genuine one, or one signed by another key.
    function submitConsent(uint256 seed, bool forged) external {
        if (ghosts.length == 0) return;
        GhostJob storage job = ghosts[seed % ghosts.length];
        uint256 count = job.partyIndexes.length;
        uint256 start = (seed >> 8) % count;
        for (uint256 k = 0; k < count; ++k) {
            uint256 i = (start + k) % count;
            if (job.consented[i]) continue;
            uint256 party = job.partyIndexes[i];
            if (forged) {
                uint256 wrongKey = (party + 1 + (seed >> 16) % (members.length - 1)) % members.length;
                bytes memory signature = _sign(wrongKey, job.id, job.manifestHash);
                _expectRevert(
                    abi.encodeCall(AuditLedger.submitConsent, (job.id, members[party], signature)),
                    outsider,
                    abi.encodeWithSelector(AuditLedger.InvalidConsent.selector, job.id, members[party])
                );
                return;
            }
            vm.prank(outsider); // anyone may relay a party's own signature
            ledger.submitConsent(job.id, members[party], _sign(party, job.id, job.manifestHash));
            job.consented[i] = true;
            job.opened = _allConsented(job);
            return;
        }
    }

    /// @notice Another member tries to take an existing job's id: its createJob with the same manifest and
    ///         salt (naming the victim's creator as a party) creates a different job, and the victim's is intact.
    function squat(uint256 seed) external {
        if (ghosts.length == 0 || ghosts.length >= MAX_JOBS) return;
        GhostJob storage victim = ghosts[seed % ghosts.length];
        uint256 creatorIndex = _indexOf(victim.creator);
        uint256 squatter = (creatorIndex + 1 + (seed >> 8) % (members.length - 1)) % members.length;
        uint256[] memory indexes = new uint256[](2);
        (indexes[0], indexes[1]) = (squatter, creatorIndex);
        address[] memory parties = new address[](2);
        (parties[0], parties[1]) = (members[squatter], victim.creator);
        bytes32 own = keccak256(abi.encode(members[squatter], victim.manifestHash, victim.salt));
        if (known[own]) {
            // the same squatter again: that id is its own job already
            _expectRevert(
                abi.encodeCall(AuditLedger.createJob, (victim.manifestHash, victim.salt, parties, new bytes[](0))),
                members[squatter],
                abi.encodeWithSelector(AuditLedger.JobAlreadyExists.selector, own)
            );
            return;
        }
        AuditLedger.Job memory before = ledger.getJob(victim.id);
        vm.prank(members[squatter]);
        bytes32 created = ledger.createJob(victim.manifestHash, victim.salt, parties, new bytes[](0));
        if (created == victim.id) _unexpected("a squatter created another creator's job id");
        AuditLedger.Job memory afterwards = ledger.getJob(victim.id);
        if (keccak256(abi.encode(before)) != keccak256(abi.encode(afterwards))) _unexpected("squatting changed a job");
        _remember(created, members[squatter], victim.manifestHash, victim.salt, indexes, new bool[](2), false);
    }

    /// @notice The anchoring service anchors a job's next step record (any job: anchoring is job-agnostic).
    function anchorStep(uint256 seed) external {
        if (ghosts.length == 0) return;
        GhostJob storage job = ghosts[seed % ghosts.length];
        if (job.closed || job.recordHashes.length >= 40) return;
        uint64 seq = uint64(job.recordHashes.length);
        bytes32 recordHash = keccak256(abi.encode("record", job.id, seq, seed));
        bytes32 filler = keccak256(abi.encode("filler", job.id, seq, seed));
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(job.id, seq, recordHash))));
        bytes32 root = leaf < filler ? keccak256(abi.encode(leaf, filler)) : keccak256(abi.encode(filler, leaf));
        vm.prank(anchorService);
        ledger.anchorBatch(keccak256(abi.encode("batch", root)), root, 2);
        job.recordHashes.push(recordHash);
        job.fillers.push(filler);
        job.roots.push(root);
    }

    /// @notice A model is recorded: by the anchoring service (only an open job's), or by a party or an
    ///         outsider (never).
    function recordModel(uint256 seed) external {
        if (ghosts.length == 0) return;
        GhostJob storage job = ghosts[seed % ghosts.length];
        uint32 version = job.models + 1;
        bytes32 hash_ = keccak256(abi.encode("weights", seed));
        bytes memory call = abi.encodeCall(AuditLedger.recordModel, (job.id, MODEL, version, hash_));
        uint256 who = (seed >> 8) % 3;
        if (who != 0) {
            address caller = who == 1 ? members[job.partyIndexes[(seed >> 16) % job.partyIndexes.length]] : outsider;
            _expectRevert(call, caller, abi.encodeWithSelector(AuditLedger.NotAnchorService.selector, caller));
        } else if (!_isOpen(job)) {
            _expectRevert(call, anchorService, abi.encodeWithSelector(AuditLedger.JobNotOpen.selector, job.id));
        } else {
            vm.prank(anchorService);
            ledger.recordModel(job.id, MODEL, version, hash_);
            job.models = version;
        }
    }

    /// @notice A job is closed: genuinely by the anchoring service (an open job, its last record proven), or as
    ///         an attack: by a party, with a wrong step count, or with another job's last record and root.
    function closeJob(uint256 seed) external {
        if (ghosts.length == 0) return;
        GhostJob storage job = ghosts[seed % ghosts.length];
        uint256 mode = (seed >> 8) % 4;
        uint64 steps = uint64(job.recordHashes.length);
        (bytes32 recordHash, bytes32 root, bytes32[] memory proof) = _lastRecord(job);
        if (mode == 1) {
            address party = members[job.partyIndexes[(seed >> 16) % job.partyIndexes.length]];
            _expectRevert(
                abi.encodeCall(AuditLedger.closeJob, (job.id, steps, recordHash, root, proof, true)),
                party,
                abi.encodeWithSelector(AuditLedger.NotAnchorService.selector, party)
            );
        } else if (!_isOpen(job)) {
            _expectRevert(
                abi.encodeCall(AuditLedger.closeJob, (job.id, steps, recordHash, root, proof, true)),
                anchorService,
                abi.encodeWithSelector(AuditLedger.JobNotOpen.selector, job.id)
            );
        } else if (mode == 2 && steps > 0) {
            uint64 wrong = steps + 1 + uint64((seed >> 16) % 998); // e.g. 999 steps
            _expectRevert(
                abi.encodeCall(AuditLedger.closeJob, (job.id, wrong, recordHash, root, proof, true)),
                anchorService,
                abi.encodeWithSelector(AuditLedger.FinalRecordNotProven.selector, job.id, wrong - 1, recordHash, root)
            );
        } else if (mode == 3) {
            GhostJob storage other = ghosts[(seed >> 16) % ghosts.length];
            uint64 otherSteps = uint64(other.recordHashes.length);
            if (other.id == job.id || otherSteps == 0) return;
            (recordHash, root, proof) = _lastRecord(other);
            _expectRevert(
                abi.encodeCall(AuditLedger.closeJob, (job.id, otherSteps, recordHash, root, proof, true)),
                anchorService,
                abi.encodeWithSelector(
                    AuditLedger.FinalRecordNotProven.selector, job.id, otherSteps - 1, recordHash, root
                )
            );
        } else {
            vm.prank(anchorService);
            ledger.closeJob(job.id, steps, recordHash, root, proof, seed % 2 == 0);
            job.closed = true;
            job.closedSteps = steps;
        }
    }

    // ------------------------------------------------------------------ internals

    function _lastRecord(GhostJob storage job)
        internal
        view
        returns (bytes32 recordHash, bytes32 root, bytes32[] memory proof)
    {
        uint256 steps = job.recordHashes.length;
        if (steps == 0) return (bytes32(0), bytes32(0), new bytes32[](0));
        proof = new bytes32[](1);
        proof[0] = job.fillers[steps - 1];
        return (job.recordHashes[steps - 1], job.roots[steps - 1], proof);
    }

    function _isOpen(GhostJob storage job) internal view returns (bool) {
        return job.opened && !job.closed;
    }

    function _allConsented(GhostJob storage job) internal view returns (bool) {
        for (uint256 i = 0; i < job.consented.length; ++i) {
            if (!job.consented[i]) return false;
        }
        return true;
    }

    function _remember(
        bytes32 jobId,
        address creator,
        bytes32 manifestHash,
        bytes32 salt,
        uint256[] memory indexes,
        bool[] memory consented,
        bool opened
    ) internal {
        if (known[jobId]) _unexpected("a job id was created twice");
        known[jobId] = true;
        GhostJob storage job = ghosts.push();
        job.id = jobId;
        job.creator = creator;
        job.manifestHash = manifestHash;
        job.salt = salt;
        job.partyIndexes = indexes;
        job.consented = consented;
        job.opened = opened;
    }

    function _indexOf(address member) internal view returns (uint256) {
        for (uint256 i = 0; i < members.length; ++i) {
            if (members[i] == member) return i;
        }
        revert("not a member");
    }

    function _sign(uint256 index, bytes32 jobId, bytes32 manifestHash) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[index], ledger.consentDigest(jobId, manifestHash));
        return abi.encodePacked(r, s, v);
    }

    /// @dev Call the ledger as `caller` expecting exactly `expected` as revert data; count anything else.
    function _expectRevert(bytes memory call, address caller, bytes memory expected) internal {
        vm.prank(caller);
        (bool ok, bytes memory returned) = address(ledger).call(call);
        if (ok) _unexpected("a call the rules refuse went through");
        else if (keccak256(returned) != keccak256(expected)) _unexpected("refused with another error");
    }

    function _unexpected(string memory what) internal {
        ++unexpected;
        lastUnexpected = what;
    }
}
