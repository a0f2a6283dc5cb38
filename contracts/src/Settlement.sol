// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {AuditLedger} from "./AuditLedger.sol";
import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";

/// @title Settlement
/// @notice Contribution weights and revenue sharing per secureflow job.
///
///         Weights: once per job, the job's parties fix a weight in basis points per party (summing to
///         exactly 10,000). The weights refer to an anchored contribution record: the caller gives the
///         record's leaf inputs (recordHash, seq), its Merkle proof and a root; the contract recomputes the
///         StandardMerkleTree leaf keccak256(bytes.concat(keccak256(abi.encode(jobId, seq, recordHash))))
///         and requires `AuditLedger.verify(leaf, proof, root)`. The weights themselves are bound by
///         `weightsHash = keccak256(abi.encode(jobId, members, bps))`, and every party approves the pair
///         (weightsHash, recordLeaf), either by an EIP-712 `ContributionApproval` signature (domain
///         "SecureflowSettlement", "1") or on-chain with `approveWeights`. The contract cannot read the
///         record's content (only its hash is anchored): by convention the anchored contribution record
///         carries the weightsHash among its output digests, which the parties and any auditor check
///         off-chain before approving (secureflow's client does).
///
///         Revenue: anyone deposits ETH or an ERC-20 for a job whose weights are set (deposits before
///         that revert). Fee-on-transfer (or otherwise non-exact) tokens are refused: the received
///         balance delta must equal the amount. Members pull their share per asset.
///
///         Rounding: a member's cumulative entitlement for an asset is its share of the job's total
///         deposits of that asset under the highest-averages (D'Hondt) rule: every member first gets
///         floor(total * bps / 10000); each of the remaining (fewer than n) units goes, one at a time, to
///         the member with the largest bps / (allocated + 1), the lowest index on ties. The entitlements
///         sum to exactly the total deposited (nothing is stuck) and never decrease when more is
///         deposited, so the sum paid out can never exceed the deposits. (Giving all of the remainder to a
///         fixed member would not be monotone: with 3334/3333/3333 bps that member is entitled to 3 of 3
///         units but only to 2 of 4.)
contract Settlement is EIP712, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice The record of an anchored contribution: the leaf inputs and the proof against `root`.
    struct RecordProof {
        bytes32 recordHash;
        uint64 seq;
        bytes32 root;
        bytes32[] proof;
    }

    /// @notice What is stored when a job's weights are set (members and bps are kept separately).
    struct WeightsInfo {
        bytes32 weightsHash;
        bytes32 recordLeaf;
        bytes32 root;
        uint64 setAtBlock;
        address setBy;
    }

    /// @notice Basis points that a job's weights must sum to.
    uint256 public constant TOTAL_BPS = 10_000;
    /// @notice The asset id of ETH in views and events.
    address public constant ETH = address(0);
    /// @notice The largest total that may be deposited per job and asset (so total * bps cannot overflow).
    uint256 public constant MAX_TOTAL_DEPOSIT = type(uint256).max / TOTAL_BPS;
    /// @notice EIP-712 type hash of `ContributionApproval(bytes32 jobId,bytes32 weightsHash,bytes32 recordLeaf)`.
    bytes32 public constant CONTRIBUTION_APPROVAL_TYPEHASH =
        keccak256("ContributionApproval(bytes32 jobId,bytes32 weightsHash,bytes32 recordLeaf)");

    /// @notice The registry that says who is an active member.
    ConsortiumRegistry public immutable registry;
    /// @notice The audit ledger holding the jobs and the anchored roots.
    AuditLedger public immutable ledger;

    mapping(bytes32 jobId => WeightsInfo) private _weights;
    mapping(bytes32 jobId => address[]) private _members;
    mapping(bytes32 jobId => uint16[]) private _bps;
    mapping(bytes32 jobId => mapping(address member => uint256 indexPlusOne)) private _memberIndex;
    mapping(bytes32 approvalHash => mapping(address party => bool)) private _approved;
    mapping(bytes32 jobId => mapping(address asset => uint256)) private _deposited;
    mapping(bytes32 jobId => mapping(address asset => uint256)) private _releasedTotal;
    mapping(bytes32 jobId => mapping(address asset => mapping(address member => uint256))) private _released;

    /// @notice The zero address was given where a contract or token is required.
    error ZeroAddress();
    /// @notice The audit ledger does not use this registry.
    error RegistryMismatch(address ledgerRegistry, address registry);
    /// @notice No job with this id exists on the audit ledger.
    error UnknownJob(bytes32 jobId);
    /// @notice `account` is not a party of the job.
    error NotJobParty(bytes32 jobId, address account);
    /// @notice `account` is not an active consortium member.
    error NotActiveMember(address account);
    /// @notice The job's weights are set already (they are set once).
    error WeightsAlreadySet(bytes32 jobId);
    /// @notice The job's weights are not set yet.
    error WeightsNotSet(bytes32 jobId);
    /// @notice A weights hash or record leaf is zero.
    error InvalidProposal();
    /// @notice `members` and `bps` differ in length.
    error LengthMismatch(uint256 members, uint256 bps);
    /// @notice The members of the weights are not exactly the job's parties.
    error MembersNotJobParties(bytes32 jobId);
    /// @notice `member` appears twice in the weights.
    error DuplicateMember(address member);
    /// @notice The weights sum to `sum`, not 10,000 basis points.
    error InvalidWeightsSum(uint256 sum);
    /// @notice The contribution record's leaf is not proven against an anchored root.
    error RecordNotAnchored(bytes32 jobId, bytes32 recordLeaf, bytes32 root);
    /// @notice The signature list must be empty or have one entry per party.
    error SignatureLengthMismatch(uint256 parties, uint256 signatures);
    /// @notice The signature is not `party`'s EIP-712 ContributionApproval.
    error InvalidApproval(bytes32 jobId, address party);
    /// @notice `party` has neither signed nor approved the weights on-chain.
    error MissingApproval(bytes32 jobId, address party);
    /// @notice `party` has already approved these weights on-chain.
    error AlreadyApproved(bytes32 jobId, address party);
    /// @notice A deposit of zero.
    error ZeroAmount();
    /// @notice The deposit would take the job's total for the asset above MAX_TOTAL_DEPOSIT.
    error DepositCapExceeded(bytes32 jobId, address asset);
    /// @notice The token moved `received` instead of `amount` (fee-on-transfer or rebasing tokens are refused).
    error UnsupportedToken(address token, uint256 amount, uint256 received);
    /// @notice `account` has no weight in the job.
    error NotSettlementMember(bytes32 jobId, address account);
    /// @notice `member` has nothing to withdraw for this job and asset.
    error NothingToRelease(bytes32 jobId, address asset, address member);
    /// @notice Sending ETH to `to` failed.
    error EthTransferFailed(address to, uint256 amount);

    /// @notice `party` approved (on-chain) the weights `weightsHash` referring to the record `recordLeaf`.
    event WeightsApproved(bytes32 indexed jobId, address indexed party, bytes32 weightsHash, bytes32 recordLeaf);
    /// @notice The job's weights were set from the contribution record `recordLeaf` anchored under `root`.
    event WeightsSet(
        bytes32 indexed jobId,
        bytes32 weightsHash,
        bytes32 recordLeaf,
        bytes32 root,
        address[] members,
        uint16[] bps,
        address indexed setBy
    );
    /// @notice `depositor` deposited `amount` of `asset` (address(0) = ETH) as revenue of the job.
    event RevenueDeposited(
        bytes32 indexed jobId, address indexed asset, address indexed depositor, uint256 amount, uint256 total
    );
    /// @notice `member` withdrew `amount` of `asset` (address(0) = ETH) from the job's revenue.
    event RevenueReleased(bytes32 indexed jobId, address indexed asset, address indexed member, uint256 amount);

    /// @param registry_ The consortium registry.
    /// @param ledger_ The audit ledger (it must use `registry_`).
    constructor(ConsortiumRegistry registry_, AuditLedger ledger_) EIP712("SecureflowSettlement", "1") {
        if (address(registry_) == address(0) || address(ledger_) == address(0)) revert ZeroAddress();
        address ledgerRegistry = address(ledger_.registry());
        if (ledgerRegistry != address(registry_)) revert RegistryMismatch(ledgerRegistry, address(registry_));
        registry = registry_;
        ledger = ledger_;
    }

    // --------------------------------------------------------------- weights

    /// @notice Approve, on-chain, the weights `weightsHash` of a job referring to the contribution record
    ///         `recordLeaf` (an alternative to an EIP-712 signature). The caller must be an active member
    ///         and a party of the job.
    /// @param jobId The job.
    /// @param weightsHash_ keccak256(abi.encode(jobId, members, bps)) of the proposed weights.
    /// @param recordLeaf_ The StandardMerkleTree leaf of the anchored contribution record.
    function approveWeights(bytes32 jobId, bytes32 weightsHash_, bytes32 recordLeaf_) external {
        if (weightsHash_ == bytes32(0) || recordLeaf_ == bytes32(0)) revert InvalidProposal();
        if (_weights[jobId].weightsHash != bytes32(0)) revert WeightsAlreadySet(jobId);
        _requireParty(jobId, ledger.jobParties(jobId), msg.sender);
        bytes32 key = _approvalStructHash(jobId, weightsHash_, recordLeaf_);
        if (_approved[key][msg.sender]) revert AlreadyApproved(jobId, msg.sender);
        _approved[key][msg.sender] = true;
        emit WeightsApproved(jobId, msg.sender, weightsHash_, recordLeaf_);
    }

    /// @notice Set a job's contribution weights, once. The caller must be an active member and a party;
    ///         `members` must be exactly the job's parties (any order), each an active member; `bps` must
    ///         sum to 10,000; the record must be proven against an anchored root; and every party must
    ///         have approved (weightsHash, recordLeaf) by signature or on-chain.
    /// @param jobId The job.
    /// @param members The job's parties, in the order of `bps`.
    /// @param bps Each member's weight in basis points.
    /// @param record The anchored contribution record (leaf inputs, root, proof).
    /// @param signatures Empty (every party approved on-chain), or one entry per party in `jobParties`
    ///        order: that party's EIP-712 ContributionApproval signature, or empty bytes if it approved
    ///        on-chain.
    function setWeights(
        bytes32 jobId,
        address[] calldata members,
        uint16[] calldata bps,
        RecordProof calldata record,
        bytes[] calldata signatures
    ) external {
        if (_weights[jobId].weightsHash != bytes32(0)) revert WeightsAlreadySet(jobId);
        address[] memory parties = ledger.jobParties(jobId);
        _requireParty(jobId, parties, msg.sender);
        _storeMembers(jobId, members, bps, parties);

        bytes32 leaf = recordLeaf(jobId, record.seq, record.recordHash);
        if (!ledger.verify(leaf, record.proof, record.root)) revert RecordNotAnchored(jobId, leaf, record.root);
        bytes32 hash_ = weightsHash(jobId, members, bps);
        _checkApprovals(jobId, _approvalStructHash(jobId, hash_, leaf), parties, signatures);

        _weights[jobId] = WeightsInfo({
            weightsHash: hash_,
            recordLeaf: leaf,
            root: record.root,
            setAtBlock: uint64(block.number),
            setBy: msg.sender
        });
        emit WeightsSet(jobId, hash_, leaf, record.root, members, bps, msg.sender);
    }

    // --------------------------------------------------------------- revenue

    /// @notice Deposit ETH revenue for a job whose weights are set.
    /// @param jobId The job.
    function depositEth(bytes32 jobId) external payable nonReentrant {
        _recordDeposit(jobId, ETH, msg.value);
    }

    /// @notice Deposit `amount` of an ERC-20 as revenue for a job whose weights are set (approve first).
    ///         The contract's balance must grow by exactly `amount`: fee-on-transfer tokens are refused.
    /// @param jobId The job.
    /// @param token The ERC-20 token.
    /// @param amount The amount to transfer from the caller.
    function depositToken(bytes32 jobId, IERC20 token, uint256 amount) external nonReentrant {
        if (address(token) == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        if (_weights[jobId].weightsHash == bytes32(0)) revert WeightsNotSet(jobId);
        // The amount received is only known after the transfer; nonReentrant guards the late bookkeeping.
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert UnsupportedToken(address(token), amount, received);
        _recordDeposit(jobId, address(token), amount);
    }

    /// @notice Withdraw the caller's releasable ETH of a job.
    /// @param jobId The job.
    /// @return amount The amount sent.
    function withdrawEth(bytes32 jobId) external nonReentrant returns (uint256 amount) {
        amount = _release(jobId, ETH, msg.sender);
        (bool ok, ) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert EthTransferFailed(msg.sender, amount);
    }

    /// @notice Withdraw the caller's releasable amount of `token` for a job.
    /// @param jobId The job.
    /// @param token The ERC-20 token.
    /// @return amount The amount sent.
    function withdrawToken(bytes32 jobId, IERC20 token) external nonReentrant returns (uint256 amount) {
        if (address(token) == address(0)) revert ZeroAddress();
        amount = _release(jobId, address(token), msg.sender);
        token.safeTransfer(msg.sender, amount);
    }

    // ----------------------------------------------------------------- views

    /// @notice keccak256(abi.encode(jobId, members, bps)): what the parties approve.
    /// @param jobId The job.
    /// @param members The members.
    /// @param bps The weights in basis points.
    /// @return The weights hash.
    function weightsHash(
        bytes32 jobId,
        address[] calldata members,
        uint16[] calldata bps
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(jobId, members, bps));
    }

    /// @notice The StandardMerkleTree leaf of a step record.
    /// @param jobId The job.
    /// @param seq The record's sequence number.
    /// @param recordHash The record's hash.
    /// @return keccak256(bytes.concat(keccak256(abi.encode(jobId, seq, recordHash)))).
    function recordLeaf(bytes32 jobId, uint64 seq, bytes32 recordHash) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(jobId, seq, recordHash))));
    }

    /// @notice The EIP-712 digest a party signs to approve weights.
    /// @param jobId The job.
    /// @param weightsHash_ The weights hash.
    /// @param recordLeaf_ The contribution record's leaf.
    /// @return The typed-data digest of ContributionApproval(jobId, weightsHash, recordLeaf).
    function approvalDigest(bytes32 jobId, bytes32 weightsHash_, bytes32 recordLeaf_) public view returns (bytes32) {
        return _hashTypedDataV4(_approvalStructHash(jobId, weightsHash_, recordLeaf_));
    }

    /// @notice Whether `party` approved (weightsHash, recordLeaf) for the job on-chain.
    /// @param jobId The job.
    /// @param weightsHash_ The weights hash.
    /// @param recordLeaf_ The contribution record's leaf.
    /// @param party The party.
    /// @return True after `approveWeights` by `party`.
    function hasApproved(
        bytes32 jobId,
        bytes32 weightsHash_,
        bytes32 recordLeaf_,
        address party
    ) external view returns (bool) {
        return _approved[_approvalStructHash(jobId, weightsHash_, recordLeaf_)][party];
    }

    /// @notice Whether the job's weights are set.
    /// @param jobId The job.
    /// @return True once set.
    function weightsSet(bytes32 jobId) external view returns (bool) {
        return _weights[jobId].weightsHash != bytes32(0);
    }

    /// @notice A job's weights (empty arrays and zero fields while not set).
    /// @param jobId The job.
    /// @return members The members.
    /// @return bps Their weights in basis points.
    /// @return info Weights hash, record leaf, root, block and setter.
    function weightsOf(
        bytes32 jobId
    ) external view returns (address[] memory members, uint16[] memory bps, WeightsInfo memory info) {
        return (_members[jobId], _bps[jobId], _weights[jobId]);
    }

    /// @notice Total deposited for a job in `asset` (address(0) = ETH).
    /// @param jobId The job.
    /// @param asset The asset.
    /// @return The cumulative deposits.
    function totalDeposited(bytes32 jobId, address asset) external view returns (uint256) {
        return _deposited[jobId][asset];
    }

    /// @notice Total withdrawn from a job in `asset`.
    /// @param jobId The job.
    /// @param asset The asset.
    /// @return The cumulative withdrawals.
    function totalReleased(bytes32 jobId, address asset) external view returns (uint256) {
        return _releasedTotal[jobId][asset];
    }

    /// @notice What `member` has withdrawn from a job in `asset`.
    /// @param jobId The job.
    /// @param asset The asset.
    /// @param member The member.
    /// @return The member's cumulative withdrawals.
    function released(bytes32 jobId, address asset, address member) external view returns (uint256) {
        return _released[jobId][asset][member];
    }

    /// @notice `member`'s cumulative entitlement in `asset` (zero for a non-member).
    /// @param jobId The job.
    /// @param asset The asset.
    /// @param member The member.
    /// @return The member's share of the total deposited under the rounding rule.
    function entitlement(bytes32 jobId, address asset, address member) public view returns (uint256) {
        uint256 index = _memberIndex[jobId][member];
        if (index == 0) return 0;
        return _allocation(jobId, _deposited[jobId][asset])[index - 1];
    }

    /// @notice Every member's cumulative entitlement in `asset`, in `weightsOf` order (sums to the deposits).
    /// @param jobId The job.
    /// @param asset The asset.
    /// @return The entitlements.
    function entitlements(bytes32 jobId, address asset) external view returns (uint256[] memory) {
        return _allocation(jobId, _deposited[jobId][asset]);
    }

    /// @notice What `member` can withdraw now from a job in `asset`.
    /// @param jobId The job.
    /// @param asset The asset.
    /// @param member The member.
    /// @return Entitlement minus what the member has withdrawn.
    function releasable(bytes32 jobId, address asset, address member) external view returns (uint256) {
        return entitlement(jobId, asset, member) - _released[jobId][asset][member];
    }

    // -------------------------------------------------------------- internal

    function _requireParty(bytes32 jobId, address[] memory parties, address account) private view {
        if (parties.length == 0) revert UnknownJob(jobId);
        bool found = false;
        for (uint256 i = 0; i < parties.length; ++i) {
            if (parties[i] == account) {
                found = true;
                break;
            }
        }
        if (!found) revert NotJobParty(jobId, account);
        if (!registry.isActiveMember(account)) revert NotActiveMember(account);
    }

    function _storeMembers(
        bytes32 jobId,
        address[] calldata members,
        uint16[] calldata bps,
        address[] memory parties
    ) private {
        uint256 count = members.length;
        if (count != bps.length) revert LengthMismatch(count, bps.length);
        if (count != parties.length) revert MembersNotJobParties(jobId);
        mapping(address => uint256) storage index = _memberIndex[jobId];
        uint256 sum = 0;
        for (uint256 i = 0; i < count; ++i) {
            address member = members[i];
            if (index[member] != 0) revert DuplicateMember(member);
            index[member] = i + 1;
            sum += bps[i];
        }
        if (sum != TOTAL_BPS) revert InvalidWeightsSum(sum);
        // count distinct members, each a party: the two sets are equal
        for (uint256 i = 0; i < count; ++i) {
            if (index[parties[i]] == 0) revert MembersNotJobParties(jobId);
            if (!registry.isActiveMember(parties[i])) revert NotActiveMember(parties[i]);
        }
        _members[jobId] = members;
        _bps[jobId] = bps;
    }

    function _checkApprovals(
        bytes32 jobId,
        bytes32 structHash,
        address[] memory parties,
        bytes[] calldata signatures
    ) private view {
        uint256 count = parties.length;
        uint256 given = signatures.length;
        if (given != 0 && given != count) revert SignatureLengthMismatch(count, given);
        bytes32 digest = _hashTypedDataV4(structHash);
        mapping(address => bool) storage onChain = _approved[structHash];
        for (uint256 i = 0; i < count; ++i) {
            address party = parties[i];
            if (given != 0 && signatures[i].length != 0) {
                (address signer, ECDSA.RecoverError error, ) = ECDSA.tryRecover(digest, signatures[i]);
                if (error != ECDSA.RecoverError.NoError || signer != party) revert InvalidApproval(jobId, party);
            } else if (!onChain[party]) {
                revert MissingApproval(jobId, party);
            }
        }
    }

    function _recordDeposit(bytes32 jobId, address asset, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        if (_weights[jobId].weightsHash == bytes32(0)) revert WeightsNotSet(jobId);
        uint256 total = _deposited[jobId][asset] + amount;
        if (total > MAX_TOTAL_DEPOSIT) revert DepositCapExceeded(jobId, asset);
        _deposited[jobId][asset] = total;
        emit RevenueDeposited(jobId, asset, msg.sender, amount, total);
    }

    /// @dev Checks and effects of a withdrawal; the caller does the transfer afterwards.
    function _release(bytes32 jobId, address asset, address member) private returns (uint256 amount) {
        if (_weights[jobId].weightsHash == bytes32(0)) revert WeightsNotSet(jobId);
        uint256 index = _memberIndex[jobId][member];
        if (index == 0) revert NotSettlementMember(jobId, member);
        uint256 entitled = _allocation(jobId, _deposited[jobId][asset])[index - 1];
        uint256 already = _released[jobId][asset][member];
        amount = entitled - already; // entitlements never decrease, so this cannot underflow
        if (amount == 0) revert NothingToRelease(jobId, asset, member);
        _released[jobId][asset][member] = entitled;
        _releasedTotal[jobId][asset] += amount;
        emit RevenueReleased(jobId, asset, member, amount);
    }

    /// @dev Highest-averages (D'Hondt) split of `total` by the job's bps: floors first, then each
    ///      remaining unit to the largest bps / (allocated + 1), lowest index on ties. Monotone in
    ///      `total` and exact: the result sums to `total`.
    function _allocation(bytes32 jobId, uint256 total) private view returns (uint256[] memory alloc) {
        uint16[] memory bps = _bps[jobId];
        uint256 count = bps.length;
        alloc = new uint256[](count);
        uint256 assigned = 0;
        for (uint256 i = 0; i < count; ++i) {
            uint256 share = (total * bps[i]) / TOTAL_BPS;
            alloc[i] = share;
            assigned += share;
        }
        for (uint256 remaining = total - assigned; remaining > 0; --remaining) {
            uint256 best = 0;
            for (uint256 i = 1; i < count; ++i) {
                // bps[i] / (alloc[i] + 1) > bps[best] / (alloc[best] + 1), cross-multiplied
                if (uint256(bps[i]) * (alloc[best] + 1) > uint256(bps[best]) * (alloc[i] + 1)) best = i;
            }
            ++alloc[best];
        }
    }

    function _approvalStructHash(
        bytes32 jobId,
        bytes32 weightsHash_,
        bytes32 recordLeaf_
    ) private pure returns (bytes32) {
        return keccak256(abi.encode(CONTRIBUTION_APPROVAL_TYPEHASH, jobId, weightsHash_, recordLeaf_));
    }
}
