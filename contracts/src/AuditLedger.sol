// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";

/// @title AuditLedger
/// @notice The on-chain audit record of secureflow: jobs (manifest hash, parties, EIP-712 consent,
///         status, step count and final root on close), Merkle roots of batches of step records,
///         and model hashes with sequential versions. Leaves are OpenZeppelin StandardMerkleTree
///         leaves of (bytes32 jobId, uint64 seq, bytes32 recordHash); `verify` checks a proof
///         against an anchored root.
contract AuditLedger is EIP712 {
    /// @notice Lifecycle of a job; None means the job does not exist.
    enum JobStatus {
        None,
        Open,
        Closed,
        Failed
    }

    /// @notice A job as returned by `getJob`.
    struct Job {
        bytes32 manifestHash;
        address creator;
        JobStatus status;
        uint64 createdAtBlock;
        uint64 stepCount;
        bytes32 finalRoot;
    }

    /// @notice An anchored batch as returned by `getBatch`.
    struct Batch {
        bytes32 root;
        uint32 recordCount;
        uint64 anchoredAtBlock;
        address anchorer;
    }

    /// @notice What is stored per anchored root (one storage slot), as returned by `rootRecord`.
    struct RootRecord {
        uint32 recordCount;
        uint64 anchoredAtBlock;
        address anchorer;
    }

    /// @notice EIP-712 type hash of `JobConsent(bytes32 jobId,bytes32 manifestHash)`.
    bytes32 public constant JOB_CONSENT_TYPEHASH = keccak256("JobConsent(bytes32 jobId,bytes32 manifestHash)");

    uint8 private constant _PARTY = 1;
    uint8 private constant _CONSENTED = 2;

    /// @notice The registry that says who is an active member and who is the anchoring service.
    ConsortiumRegistry public immutable registry;

    mapping(bytes32 jobId => Job) private _jobs;
    mapping(bytes32 jobId => address[]) private _parties;
    mapping(bytes32 jobId => mapping(address party => uint8 flags)) private _partyFlags;
    // Anchoring is the hot path: two fresh storage slots per batch (batch id -> root, root -> record).
    mapping(bytes32 batchId => bytes32 root) private _batchRoot;
    mapping(bytes32 root => RootRecord) private _roots;
    // Model ids are namespaced by job: a member can only record models of jobs it is party to, so no one can
    // take a version number of another job's model (a global id could be squatted from a job of one's own).
    mapping(bytes32 jobId => mapping(bytes32 modelId => uint32 version)) private _latestModelVersion;
    mapping(bytes32 jobId => mapping(bytes32 modelId => mapping(uint32 version => bytes32 modelHash)))
        private _modelHashes;

    /// @notice The zero address was given where a contract or account is required.
    error ZeroAddress();
    /// @notice A job id or manifest hash is zero.
    error InvalidJob();
    /// @notice A job with this id exists already.
    error JobAlreadyExists(bytes32 jobId);
    /// @notice No job with this id exists.
    error UnknownJob(bytes32 jobId);
    /// @notice A job needs at least one party.
    error EmptyParties();
    /// @notice `party` appears twice in the party list.
    error DuplicateParty(address party);
    /// @notice `account` is not an active consortium member.
    error NotActiveMember(address account);
    /// @notice The caller creating a job must be one of its parties.
    error CallerNotParty(address caller);
    /// @notice The consent list must be empty or have one entry per party.
    error ConsentLengthMismatch(uint256 parties, uint256 signatures);
    /// @notice The signature is not `party`'s EIP-712 consent to the job.
    error InvalidConsent(bytes32 jobId, address party);
    /// @notice `account` is not a party of the job.
    error NotJobParty(bytes32 jobId, address account);
    /// @notice `party` has already consented to the job.
    error AlreadyConsented(bytes32 jobId, address party);
    /// @notice The job is not open.
    error JobNotOpen(bytes32 jobId);
    /// @notice Only the anchoring service may do this.
    error NotAnchorService(address account);
    /// @notice A batch needs a non-zero id, a non-zero root and at least one record.
    error InvalidBatch();
    /// @notice This batch id is anchored already (anchoring is idempotent per batch id).
    error BatchAlreadyAnchored(bytes32 batchId);
    /// @notice This root is anchored already under another batch id.
    error RootAlreadyAnchored(bytes32 root);
    /// @notice The root is not an anchored batch root.
    error RootNotAnchored(bytes32 root);
    /// @notice A job closed with zero steps must have a zero final root.
    error UnexpectedFinalRoot(bytes32 root);
    /// @notice A model version must be exactly the latest version plus one.
    error NonSequentialVersion(bytes32 modelId, uint32 expected, uint32 given);
    /// @notice A model id or model hash is zero.
    error InvalidModel();

    /// @notice A job was created by `creator` for `parties`.
    event JobCreated(bytes32 indexed jobId, bytes32 manifestHash, address indexed creator, address[] parties);
    /// @notice `party` consented (EIP-712) to the job's manifest.
    event JobConsented(bytes32 indexed jobId, address indexed party);
    /// @notice A batch of `recordCount` step records was anchored under `root`.
    event BatchAnchored(bytes32 indexed batchId, bytes32 indexed root, uint32 recordCount, address indexed anchorer);
    /// @notice Version `version` of model `modelId`, produced by job `jobId`, has hash `modelHash`.
    event ModelRecorded(bytes32 indexed jobId, bytes32 indexed modelId, uint32 version, bytes32 modelHash);
    /// @notice The job was closed (succeeded) or failed after `stepCount` steps ending in `finalRoot`.
    event JobClosed(
        bytes32 indexed jobId, uint64 stepCount, bytes32 finalRoot, bool succeeded, address indexed closedBy
    );

    /// @param registry_ The consortium registry.
    constructor(ConsortiumRegistry registry_) EIP712("SecureflowAuditLedger", "1") {
        if (address(registry_) == address(0)) revert ZeroAddress();
        registry = registry_;
    }

    // ------------------------------------------------------------------ jobs

    /// @notice Create a job: the caller must be an active member and one of `parties`.
    /// @param jobId Unique, non-zero job id.
    /// @param manifestHash Non-zero hash of the job manifest.
    /// @param parties The job's parties: non-empty, distinct, each an active member.
    /// @param consentSignatures Empty, or one entry per party: that party's EIP-712 JobConsent signature,
    ///        or empty bytes when the party has not signed yet (it may consent later via `submitConsent`).
    function createJob(
        bytes32 jobId,
        bytes32 manifestHash,
        address[] calldata parties,
        bytes[] calldata consentSignatures
    ) external {
        if (jobId == bytes32(0) || manifestHash == bytes32(0)) revert InvalidJob();
        if (_jobs[jobId].status != JobStatus.None) revert JobAlreadyExists(jobId);
        uint256 count = parties.length;
        if (count == 0) revert EmptyParties();
        uint256 signatures = consentSignatures.length;
        if (signatures != 0 && signatures != count) revert ConsentLengthMismatch(count, signatures);
        if (!registry.isActiveMember(msg.sender)) revert NotActiveMember(msg.sender);

        bytes32 digest = consentDigest(jobId, manifestHash);
        bool callerIsParty = false;
        mapping(address => uint8) storage flags = _partyFlags[jobId];
        for (uint256 i = 0; i < count; ++i) {
            address party = parties[i];
            if (party == address(0)) revert ZeroAddress();
            if (flags[party] != 0) revert DuplicateParty(party);
            if (!registry.isActiveMember(party)) revert NotActiveMember(party);
            uint8 partyFlags = _PARTY;
            if (signatures != 0 && consentSignatures[i].length != 0) {
                _checkConsent(digest, jobId, party, consentSignatures[i]);
                partyFlags |= _CONSENTED;
            }
            flags[party] = partyFlags;
            if (party == msg.sender) callerIsParty = true;
        }
        if (!callerIsParty) revert CallerNotParty(msg.sender);

        _jobs[jobId] = Job({
            manifestHash: manifestHash,
            creator: msg.sender,
            status: JobStatus.Open,
            createdAtBlock: uint64(block.number),
            stepCount: 0,
            finalRoot: bytes32(0)
        });
        _parties[jobId] = parties;

        emit JobCreated(jobId, manifestHash, msg.sender, parties);
        if (signatures != 0) {
            for (uint256 i = 0; i < count; ++i) {
                if (consentSignatures[i].length != 0) emit JobConsented(jobId, parties[i]);
            }
        }
    }

    /// @notice Relay `party`'s EIP-712 consent to an open job (anyone may submit it).
    /// @param jobId The job.
    /// @param party The consenting party.
    /// @param signature `party`'s signature over JobConsent(jobId, manifestHash).
    function submitConsent(bytes32 jobId, address party, bytes calldata signature) external {
        Job storage job = _jobs[jobId];
        if (job.status == JobStatus.None) revert UnknownJob(jobId);
        if (job.status != JobStatus.Open) revert JobNotOpen(jobId);
        uint8 partyFlags = _partyFlags[jobId][party];
        if (partyFlags & _PARTY == 0) revert NotJobParty(jobId, party);
        if (partyFlags & _CONSENTED != 0) revert AlreadyConsented(jobId, party);
        _checkConsent(consentDigest(jobId, job.manifestHash), jobId, party, signature);
        _partyFlags[jobId][party] = partyFlags | _CONSENTED;
        emit JobConsented(jobId, party);
    }

    /// @notice The EIP-712 digest a party signs to consent to a job's manifest.
    /// @param jobId The job.
    /// @param manifestHash The job's manifest hash.
    /// @return The typed-data digest of JobConsent(jobId, manifestHash) for this contract.
    function consentDigest(bytes32 jobId, bytes32 manifestHash) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(JOB_CONSENT_TYPEHASH, jobId, manifestHash)));
    }

    /// @notice Close an open job (a party only). With steps, `finalRoot` must be an anchored root;
    ///         with zero steps it must be zero.
    /// @param jobId The job.
    /// @param stepCount Number of step records of the job.
    /// @param finalRoot The anchored root of the batch holding the job's final record.
    /// @param succeeded True for Closed, false for Failed.
    function closeJob(bytes32 jobId, uint64 stepCount, bytes32 finalRoot, bool succeeded) external {
        Job storage job = _jobs[jobId];
        if (job.status == JobStatus.None) revert UnknownJob(jobId);
        if (_partyFlags[jobId][msg.sender] & _PARTY == 0) revert NotJobParty(jobId, msg.sender);
        if (job.status != JobStatus.Open) revert JobNotOpen(jobId);
        if (stepCount > 0) {
            if (_roots[finalRoot].recordCount == 0) revert RootNotAnchored(finalRoot);
        } else if (finalRoot != bytes32(0)) {
            revert UnexpectedFinalRoot(finalRoot);
        }
        job.status = succeeded ? JobStatus.Closed : JobStatus.Failed;
        job.stepCount = stepCount;
        job.finalRoot = finalRoot;
        emit JobClosed(jobId, stepCount, finalRoot, succeeded, msg.sender);
    }

    // --------------------------------------------------------------- batches

    /// @notice Anchor the Merkle root of a batch of step records (anchoring service only).
    ///         A batch id or a root can be anchored once; a repeat reverts and changes nothing.
    ///         The batch id of a root is in the BatchAnchored event (both are indexed topics).
    /// @param batchId Non-zero batch id chosen by the anchoring service.
    /// @param root Non-zero OpenZeppelin StandardMerkleTree root of the batch.
    /// @param recordCount Number of records (leaves) in the batch, at least one.
    function anchorBatch(bytes32 batchId, bytes32 root, uint32 recordCount) external {
        if (!registry.isAnchorService(msg.sender)) revert NotAnchorService(msg.sender);
        if (batchId == bytes32(0) || root == bytes32(0) || recordCount == 0) revert InvalidBatch();
        if (_batchRoot[batchId] != bytes32(0)) revert BatchAlreadyAnchored(batchId);
        if (_roots[root].recordCount != 0) revert RootAlreadyAnchored(root);
        _batchRoot[batchId] = root;
        _roots[root] = RootRecord({
            recordCount: recordCount,
            anchoredAtBlock: uint64(block.number),
            anchorer: msg.sender
        });
        emit BatchAnchored(batchId, root, recordCount, msg.sender);
    }

    // ---------------------------------------------------------------- models

    /// @notice Record the hash of a model version produced by a job (anchoring service or a job party).
    /// @param jobId The job that produced the model.
    /// @param modelId Non-zero model id.
    /// @param version Must be the latest version of `modelId` in this job plus one (the first version is 1).
    /// @param modelHash_ Non-zero hash of the model (its shares and runtime configuration).
    function recordModel(bytes32 jobId, bytes32 modelId, uint32 version, bytes32 modelHash_) external {
        if (_jobs[jobId].status == JobStatus.None) revert UnknownJob(jobId);
        if (_partyFlags[jobId][msg.sender] & _PARTY == 0 && !registry.isAnchorService(msg.sender)) {
            revert NotJobParty(jobId, msg.sender);
        }
        if (modelId == bytes32(0) || modelHash_ == bytes32(0)) revert InvalidModel();
        uint32 expected = _latestModelVersion[jobId][modelId] + 1;
        if (version != expected) revert NonSequentialVersion(modelId, expected, version);
        _latestModelVersion[jobId][modelId] = version;
        _modelHashes[jobId][modelId][version] = modelHash_;
        emit ModelRecorded(jobId, modelId, version, modelHash_);
    }

    // ----------------------------------------------------------------- views

    /// @notice A job (all fields zero and status None if it does not exist).
    /// @param jobId The job.
    /// @return The job.
    function getJob(bytes32 jobId) external view returns (Job memory) {
        return _jobs[jobId];
    }

    /// @notice The parties of a job, in creation order.
    /// @param jobId The job.
    /// @return The parties.
    function jobParties(bytes32 jobId) external view returns (address[] memory) {
        return _parties[jobId];
    }

    /// @notice Whether `party` has consented to the job.
    /// @param jobId The job.
    /// @param party The party.
    /// @return True once the party's consent is recorded.
    function hasConsented(bytes32 jobId, address party) external view returns (bool) {
        return _partyFlags[jobId][party] & _CONSENTED != 0;
    }

    /// @notice An anchored batch (all fields zero if unknown).
    /// @param batchId The batch.
    /// @return The batch.
    function getBatch(bytes32 batchId) external view returns (Batch memory) {
        bytes32 root = _batchRoot[batchId];
        RootRecord memory record = _roots[root]; // _roots[0] is never written: all zero when unknown
        return Batch(root, record.recordCount, record.anchoredAtBlock, record.anchorer);
    }

    /// @notice The root anchored under a batch id (zero if none).
    /// @param batchId The batch.
    /// @return The root.
    function batchRoot(bytes32 batchId) external view returns (bytes32) {
        return _batchRoot[batchId];
    }

    /// @notice What was anchored under `root`: record count, block and anchorer (all zero if not anchored).
    /// @param root The root.
    /// @return The root's record.
    function rootRecord(bytes32 root) external view returns (RootRecord memory) {
        return _roots[root];
    }

    /// @notice Whether `root` is an anchored batch root.
    /// @param root The root.
    /// @return True if anchored.
    function isAnchoredRoot(bytes32 root) public view returns (bool) {
        return _roots[root].recordCount != 0;
    }

    /// @notice The hash of a model version recorded by a job (zero if not recorded).
    /// @param jobId The job that produced the model.
    /// @param modelId The model.
    /// @param version The version.
    /// @return The model hash.
    function modelHash(bytes32 jobId, bytes32 modelId, uint32 version) external view returns (bytes32) {
        return _modelHashes[jobId][modelId][version];
    }

    /// @notice The latest version of a model recorded by a job (zero if none).
    /// @param jobId The job that produced the model.
    /// @param modelId The model.
    /// @return The latest version.
    function latestModelVersion(bytes32 jobId, bytes32 modelId) external view returns (uint32) {
        return _latestModelVersion[jobId][modelId];
    }

    /// @notice Whether `proof` proves `leaf` against `root` (sorted-pair keccak, as OpenZeppelin).
    /// @param leaf The StandardMerkleTree leaf.
    /// @param proof The sibling path.
    /// @param root The root.
    /// @return True if the proof is valid (the root need not be anchored).
    function verifyProof(bytes32 leaf, bytes32[] calldata proof, bytes32 root) external pure returns (bool) {
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice Whether `root` is anchored and `proof` proves `leaf` against it.
    /// @param leaf The StandardMerkleTree leaf.
    /// @param proof The sibling path.
    /// @param root The anchored root.
    /// @return True if the root is anchored and the proof is valid.
    function verify(bytes32 leaf, bytes32[] calldata proof, bytes32 root) external view returns (bool) {
        return isAnchoredRoot(root) && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    // -------------------------------------------------------------- internal

    function _checkConsent(bytes32 digest, bytes32 jobId, address party, bytes calldata signature) private pure {
        (address signer, ECDSA.RecoverError error, ) = ECDSA.tryRecover(digest, signature);
        if (error != ECDSA.RecoverError.NoError || signer != party) revert InvalidConsent(jobId, party);
    }
}
