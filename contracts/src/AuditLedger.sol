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
/// @dev The rules a member acting directly on the chain cannot get around:
///      - a job id is derived from its creator, manifest hash and a salt (`jobIdFor`), so nobody can
///        take the id of someone else's job: a squatter's job is simply a different job;
///      - a job is `Open` only once every party has consented (EIP-712 JobConsent), in `createJob` or
///        later through `submitConsent`; until then it is `Proposed`;
///      - models are recorded and jobs closed only by the anchoring service, only for an `Open` job;
///      - a close with steps proves, against an anchored root, the leaf of the job's last record
///        (jobId, stepCount - 1, recordHash).
contract AuditLedger is EIP712 {
    /// @notice Lifecycle of a job; None means the job does not exist.
    /// @dev The numeric values are read by verifiers: `Proposed` is appended so that the values of
    ///      Open, Closed and Failed never change. Proposed -> Open (last consent) -> Closed | Failed.
    enum JobStatus {
        None,
        Open,
        Closed,
        Failed,
        Proposed
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
    // Written only for a job created without every consent; the last `submitConsent` opens the job.
    mapping(bytes32 jobId => uint256 missing) private _missingConsents;
    // Anchoring is the hot path: two fresh storage slots per batch (batch id -> root, root -> record).
    mapping(bytes32 batchId => bytes32 root) private _batchRoot;
    mapping(bytes32 root => RootRecord) private _roots;
    // Model ids are namespaced by job: a version number of one job's model can never be taken from another job.
    mapping(bytes32 jobId => mapping(bytes32 modelId => uint32 version)) private _latestModelVersion;
    mapping(bytes32 jobId => mapping(bytes32 modelId => mapping(uint32 version => bytes32 modelHash)))
        private _modelHashes;

    /// @notice The zero address was given where a contract or account is required.
    error ZeroAddress();
    /// @notice The manifest hash is zero.
    error InvalidJob();
    /// @notice This creator has already created a job with this manifest hash and salt.
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
    /// @notice The job is not waiting for consent (it is open or finished already).
    error JobNotProposed(bytes32 jobId);
    /// @notice The job is not open (still waiting for a party's consent, or closed already).
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
    /// @notice A job closed with zero steps has no final record: root and record hash must be zero, the proof empty.
    error UnexpectedFinalRecord(bytes32 root, bytes32 recordHash);
    /// @notice `proof` does not prove the leaf (jobId, seq, recordHash) against `root`.
    error FinalRecordNotProven(bytes32 jobId, uint64 seq, bytes32 recordHash, bytes32 root);
    /// @notice A model version must be exactly the latest version plus one.
    error NonSequentialVersion(bytes32 modelId, uint32 expected, uint32 given);
    /// @notice A model id or model hash is zero.
    error InvalidModel();

    /// @notice A job was created by `creator` for `parties`; its id is `jobIdFor(creator, manifestHash, salt)`.
    event JobCreated(
        bytes32 indexed jobId, bytes32 manifestHash, address indexed creator, bytes32 salt, address[] parties
    );
    /// @notice `party` consented (EIP-712) to the job's manifest.
    event JobConsented(bytes32 indexed jobId, address indexed party);
    /// @notice Every party has consented: the job is open (steps, models and its close may refer to it).
    event JobOpened(bytes32 indexed jobId);
    /// @notice A batch of `recordCount` step records was anchored under `root`.
    event BatchAnchored(bytes32 indexed batchId, bytes32 indexed root, uint32 recordCount, address indexed anchorer);
    /// @notice Version `version` of model `modelId`, produced by job `jobId`, has hash `modelHash`.
    event ModelRecorded(bytes32 indexed jobId, bytes32 indexed modelId, uint32 version, bytes32 modelHash);
    /// @notice The job was closed (succeeded) or failed after `stepCount` steps; the last record, of hash
    ///         `finalRecordHash`, is proven to be in `finalRoot` (both zero for zero steps).
    event JobClosed(
        bytes32 indexed jobId,
        uint64 stepCount,
        bytes32 finalRoot,
        bytes32 finalRecordHash,
        bool succeeded,
        address indexed closedBy
    );

    /// @param registry_ The consortium registry.
    constructor(ConsortiumRegistry registry_) EIP712("SecureflowAuditLedger", "1") {
        if (address(registry_) == address(0)) revert ZeroAddress();
        registry = registry_;
    }

    // ------------------------------------------------------------------ jobs

    /// @notice Create a job for `parties` (the caller must be one of them). Its id is derived on chain from
    ///         the caller, the manifest hash and `salt` (`jobIdFor`), so nobody else can create it. The job
    ///         is Open when every party's consent is given here, else Proposed until the last
    ///         `submitConsent`.
    /// @param manifestHash Non-zero hash of the job manifest.
    /// @param salt Any value the creator chooses to make the id unique (e.g. 32 random bytes).
    /// @param parties The job's parties: non-empty, distinct, each an active member, the caller among them.
    /// @param consentSignatures Empty, or one entry per party: that party's EIP-712 JobConsent signature over
    ///        (jobIdFor(msg.sender, manifestHash, salt), manifestHash), or empty bytes when it has not signed yet.
    /// @return jobId The new job's id.
    function createJob(
        bytes32 manifestHash,
        bytes32 salt,
        address[] calldata parties,
        bytes[] calldata consentSignatures
    ) external returns (bytes32 jobId) {
        if (manifestHash == bytes32(0)) revert InvalidJob();
        jobId = jobIdFor(msg.sender, manifestHash, salt);
        if (_jobs[jobId].status != JobStatus.None) revert JobAlreadyExists(jobId);
        if (parties.length == 0) revert EmptyParties();
        if (consentSignatures.length != 0 && consentSignatures.length != parties.length) {
            revert ConsentLengthMismatch(parties.length, consentSignatures.length);
        }
        // Checks first (the registry calls are views of our own immutable registry), then the effects.
        uint256 missing = parties.length - _checkParties(jobId, manifestHash, parties, consentSignatures);
        _storeParties(jobId, parties, consentSignatures);
        _jobs[jobId] = Job({
            manifestHash: manifestHash,
            creator: msg.sender,
            status: missing == 0 ? JobStatus.Open : JobStatus.Proposed,
            createdAtBlock: uint64(block.number),
            stepCount: 0,
            finalRoot: bytes32(0)
        });
        _parties[jobId] = parties;
        if (missing != 0) _missingConsents[jobId] = missing;

        emit JobCreated(jobId, manifestHash, msg.sender, salt, parties);
        for (uint256 i = 0; i < consentSignatures.length; ++i) {
            if (consentSignatures[i].length != 0) emit JobConsented(jobId, parties[i]);
        }
        if (missing == 0) emit JobOpened(jobId);
    }

    /// @notice Relay `party`'s EIP-712 consent to a proposed job (anyone may submit it). The last missing
    ///         consent opens the job.
    /// @param jobId The job.
    /// @param party The consenting party.
    /// @param signature `party`'s signature over JobConsent(jobId, manifestHash).
    function submitConsent(bytes32 jobId, address party, bytes calldata signature) external {
        Job storage job = _jobs[jobId];
        JobStatus status = job.status;
        if (status == JobStatus.None) revert UnknownJob(jobId);
        if (status != JobStatus.Proposed) revert JobNotProposed(jobId);
        uint8 partyFlags = _partyFlags[jobId][party];
        if (partyFlags & _PARTY == 0) revert NotJobParty(jobId, party);
        if (partyFlags & _CONSENTED != 0) revert AlreadyConsented(jobId, party);
        _checkConsent(consentDigest(jobId, job.manifestHash), jobId, party, signature);

        _partyFlags[jobId][party] = partyFlags | _CONSENTED;
        uint256 missing = _missingConsents[jobId] - 1;
        _missingConsents[jobId] = missing;
        if (missing == 0) job.status = JobStatus.Open;
        emit JobConsented(jobId, party);
        if (missing == 0) emit JobOpened(jobId);
    }

    /// @notice The id of the job `creator` creates with `manifestHash` and `salt`:
    ///         keccak256(abi.encode(creator, manifestHash, salt)).
    /// @param creator The account that calls `createJob`.
    /// @param manifestHash The job's manifest hash.
    /// @param salt The creator's salt.
    /// @return The job id.
    function jobIdFor(address creator, bytes32 manifestHash, bytes32 salt) public pure returns (bytes32) {
        return keccak256(abi.encode(creator, manifestHash, salt));
    }

    /// @notice The EIP-712 digest a party signs to consent to a job's manifest.
    /// @param jobId The job.
    /// @param manifestHash The job's manifest hash.
    /// @return The typed-data digest of JobConsent(jobId, manifestHash) for this contract.
    function consentDigest(bytes32 jobId, bytes32 manifestHash) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(JOB_CONSENT_TYPEHASH, jobId, manifestHash)));
    }

    /// @notice Close an open job (anchoring service only). With steps, `proof` must prove the leaf of the
    ///         job's last record, (jobId, stepCount - 1, finalRecordHash), against the anchored `finalRoot`;
    ///         with zero steps, root and record hash must be zero and the proof empty.
    /// @param jobId The job.
    /// @param stepCount Number of step records of the job (seqs 0 .. stepCount - 1).
    /// @param finalRecordHash The record hash of the job's last step record (seq stepCount - 1).
    /// @param finalRoot The anchored root of the batch holding that record.
    /// @param proof The Merkle proof of the last record's leaf in `finalRoot`.
    /// @param succeeded True for Closed, false for Failed.
    function closeJob(
        bytes32 jobId,
        uint64 stepCount,
        bytes32 finalRecordHash,
        bytes32 finalRoot,
        bytes32[] calldata proof,
        bool succeeded
    ) external {
        if (!registry.isAnchorService(msg.sender)) revert NotAnchorService(msg.sender);
        Job storage job = _jobs[jobId];
        JobStatus status = job.status;
        if (status == JobStatus.None) revert UnknownJob(jobId);
        if (status != JobStatus.Open) revert JobNotOpen(jobId);
        if (stepCount == 0) {
            if (finalRoot != bytes32(0) || finalRecordHash != bytes32(0) || proof.length != 0) {
                revert UnexpectedFinalRecord(finalRoot, finalRecordHash);
            }
        } else {
            if (_roots[finalRoot].recordCount == 0) revert RootNotAnchored(finalRoot);
            uint64 lastSeq = stepCount - 1;
            bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(jobId, lastSeq, finalRecordHash))));
            if (!MerkleProof.verifyCalldata(proof, finalRoot, leaf)) {
                revert FinalRecordNotProven(jobId, lastSeq, finalRecordHash, finalRoot);
            }
        }
        job.status = succeeded ? JobStatus.Closed : JobStatus.Failed;
        job.stepCount = stepCount;
        job.finalRoot = finalRoot;
        emit JobClosed(jobId, stepCount, finalRoot, finalRecordHash, succeeded, msg.sender);
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

    /// @notice Record the hash of a model version produced by an open job (anchoring service only).
    /// @param jobId The job that produced the model.
    /// @param modelId Non-zero model id.
    /// @param version Must be the latest version of `modelId` in this job plus one (the first version is 1).
    /// @param modelHash_ Non-zero hash of the model (its shares and runtime configuration).
    function recordModel(bytes32 jobId, bytes32 modelId, uint32 version, bytes32 modelHash_) external {
        if (!registry.isAnchorService(msg.sender)) revert NotAnchorService(msg.sender);
        JobStatus status = _jobs[jobId].status;
        if (status == JobStatus.None) revert UnknownJob(jobId);
        if (status != JobStatus.Open) revert JobNotOpen(jobId);
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

    /// @notice How many parties of a proposed job have not consented yet (zero for any other job).
    /// @param jobId The job.
    /// @return The number of missing consents.
    function missingConsents(bytes32 jobId) external view returns (uint256) {
        return _missingConsents[jobId];
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

    /// @dev The checks of `createJob`'s parties: each non-zero and an active member, the caller among them,
    ///      each given consent valid. Returns how many parties consented. Writes nothing.
    function _checkParties(
        bytes32 jobId,
        bytes32 manifestHash,
        address[] calldata parties,
        bytes[] calldata consentSignatures
    ) private view returns (uint256 consented) {
        bytes32 digest = consentDigest(jobId, manifestHash);
        bool signed = consentSignatures.length != 0;
        bool callerIsParty = false;
        for (uint256 i = 0; i < parties.length; ++i) {
            address party = parties[i];
            if (party == address(0)) revert ZeroAddress();
            if (!registry.isActiveMember(party)) revert NotActiveMember(party);
            if (signed && consentSignatures[i].length != 0) {
                _checkConsent(digest, jobId, party, consentSignatures[i]);
                ++consented;
            }
            if (party == msg.sender) callerIsParty = true;
        }
        if (!callerIsParty) revert CallerNotParty(msg.sender);
    }

    /// @dev Flag each party of a new job (and whether it consented); a party listed twice reverts.
    function _storeParties(bytes32 jobId, address[] calldata parties, bytes[] calldata consentSignatures) private {
        mapping(address => uint8) storage flags = _partyFlags[jobId];
        bool signed = consentSignatures.length != 0;
        for (uint256 i = 0; i < parties.length; ++i) {
            address party = parties[i];
            if (flags[party] != 0) revert DuplicateParty(party);
            flags[party] = signed && consentSignatures[i].length != 0 ? _PARTY | _CONSENTED : _PARTY;
        }
    }

    function _checkConsent(bytes32 digest, bytes32 jobId, address party, bytes calldata signature) private pure {
        (address signer, ECDSA.RecoverError error, ) = ECDSA.tryRecover(digest, signature);
        if (error != ECDSA.RecoverError.NoError || signer != party) revert InvalidConsent(jobId, party);
    }
}
