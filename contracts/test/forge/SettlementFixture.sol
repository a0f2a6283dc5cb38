// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {AuditLedger} from "../../src/AuditLedger.sol";
import {ConsortiumRegistry} from "../../src/ConsortiumRegistry.sol";
import {Settlement} from "../../src/Settlement.sol";
import {TestToken} from "../../src/test/TestToken.sol";

/// @title SettlementFixture
/// @notice The contracts deployed as `ledger/deploy.py` deploys them (registry with this test as admin, audit
///         ledger bound to it, settlement bound to both), an anchoring service, five members with known keys,
///         and `_settledJob`: a job created with every party's EIP-712 consent, its contribution record
///         anchored in a StandardMerkleTree batch (leaf format of DESIGN.md "Records and proofs"), and its
///         weights set with every party's approval (half by EIP-712 signature, half on-chain).
///         The digests and leaves are computed here from the fixed formats and checked against the contracts'
///         own views, so a drift in either shows up as a failing setUp.
abstract contract SettlementFixture is Test {
    uint256 internal constant MEMBER_COUNT = 5;
    uint256 internal constant TOTAL_BPS = 10_000;
    bytes32 internal constant EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant CONTRIBUTION_APPROVAL_TYPEHASH =
        keccak256("ContributionApproval(bytes32 jobId,bytes32 weightsHash,bytes32 recordLeaf)");
    bytes32 internal constant JOB_CONSENT_TYPEHASH = keccak256("JobConsent(bytes32 jobId,bytes32 manifestHash)");

    ConsortiumRegistry internal registry;
    AuditLedger internal ledger;
    Settlement internal settlement;
    TestToken internal token;
    address internal anchorService;
    address[] internal members;
    mapping(address member => uint256 privateKey) internal keyOf;

    function _deployConsortium() internal {
        registry = new ConsortiumRegistry(address(this));
        ledger = new AuditLedger(registry);
        settlement = new Settlement(registry, ledger);
        token = new TestToken();
        anchorService = makeAddr("anchor-service");
        registry.grantRole(registry.ANCHOR_ROLE(), anchorService);
        for (uint256 i = 0; i < MEMBER_COUNT; ++i) {
            (address member, uint256 key) = makeAddrAndKey(string.concat("member-", vm.toString(i)));
            registry.registerMember(member, keccak256(abi.encode("member metadata", i)));
            members.push(member);
            keyOf[member] = key;
        }
    }

    // ------------------------------------------------------------------ jobs

    /// @dev `parties[0]` creates a job (manifest hash derived from `salt`) whose parties all consent by
    ///      EIP-712 signature in `createJob`; returns its id, derived on chain as keccak256(abi.encode(creator,
    ///      manifestHash, salt)), so the job is Open.
    function _createJob(bytes32 salt, address[] memory parties) internal returns (bytes32 jobId) {
        bytes32 manifestHash = keccak256(abi.encode("manifest", salt));
        jobId = keccak256(abi.encode(parties[0], manifestHash, salt));
        assertEq(jobId, ledger.jobIdFor(parties[0], manifestHash, salt), "job id rule differs from the contract's");
        bytes32 digest = _typedDigest(
            _domainSeparator("SecureflowAuditLedger", address(ledger)),
            keccak256(abi.encode(JOB_CONSENT_TYPEHASH, jobId, manifestHash))
        );
        assertEq(digest, ledger.consentDigest(jobId, manifestHash), "JobConsent digest differs from EIP-712");
        bytes[] memory consents = new bytes[](parties.length);
        for (uint256 i = 0; i < parties.length; ++i) {
            consents[i] = _sign(parties[i], digest);
        }
        vm.prank(parties[0]);
        assertEq(ledger.createJob(manifestHash, salt, parties, consents), jobId, "createJob returned another id");
        for (uint256 i = 0; i < parties.length; ++i) {
            assertTrue(ledger.hasConsented(jobId, parties[i]), "a signed consent was not recorded");
        }
        assertEq(uint8(ledger.getJob(jobId).status), uint8(AuditLedger.JobStatus.Open), "job not open");
    }

    /// @dev Create a job (`_createJob`), anchor its contribution record and set `bps` for `weightMembers` (the job's parties
    ///      in any order). With `oneLeaf` the batch holds only the contribution record (root = leaf, empty
    ///      proof); otherwise three earlier step records too (a four-leaf tree).
    function _settledJob(
        bytes32 salt,
        address[] memory parties,
        address[] memory weightMembers,
        uint16[] memory bps,
        bool oneLeaf
    ) internal returns (bytes32 jobId) {
        jobId = _createJob(salt, parties);
        bytes32 hash_ = keccak256(abi.encode(jobId, weightMembers, bps));
        assertEq(hash_, settlement.weightsHash(jobId, weightMembers, bps), "weightsHash differs");
        // By convention the contribution record carries the weights hash among its output digests.
        Settlement.RecordProof memory record =
            _anchorContributionRecord(jobId, keccak256(abi.encode("contribution record", jobId, hash_)), oneLeaf);
        bytes32 leaf = _leaf(jobId, record.seq, record.recordHash);
        bytes[] memory signatures = _approve(jobId, parties, hash_, leaf);
        vm.prank(parties[parties.length - 1]);
        settlement.setWeights(jobId, weightMembers, bps, record, signatures);
        assertTrue(settlement.weightsSet(jobId), "weights not set");
    }

    /// @dev Every party approves: even indexes by EIP-712 signature, odd ones on-chain (empty signature).
    function _approve(bytes32 jobId, address[] memory parties, bytes32 hash_, bytes32 leaf)
        internal
        returns (bytes[] memory signatures)
    {
        bytes32 digest = _typedDigest(
            _domainSeparator("SecureflowSettlement", address(settlement)),
            keccak256(abi.encode(CONTRIBUTION_APPROVAL_TYPEHASH, jobId, hash_, leaf))
        );
        assertEq(digest, settlement.approvalDigest(jobId, hash_, leaf), "approval digest differs from EIP-712");
        signatures = new bytes[](parties.length);
        for (uint256 i = 0; i < parties.length; ++i) {
            if (i % 2 == 0) {
                signatures[i] = _sign(parties[i], digest);
            } else {
                vm.prank(parties[i]);
                settlement.approveWeights(jobId, hash_, leaf);
            }
        }
    }

    // --------------------------------------------------------------- records

    /// @dev The StandardMerkleTree leaf of (bytes32 jobId, uint64 seq, bytes32 recordHash), per DESIGN.md.
    function _leaf(bytes32 jobId, uint64 seq, bytes32 recordHash) internal view returns (bytes32 leaf) {
        leaf = keccak256(bytes.concat(keccak256(abi.encode(jobId, seq, recordHash))));
        assertEq(leaf, settlement.recordLeaf(jobId, seq, recordHash), "record leaf differs from DESIGN.md");
    }

    /// @dev Anchor a batch holding the contribution record (seq 3) and return its proof.
    function _anchorContributionRecord(bytes32 jobId, bytes32 recordHash, bool oneLeaf)
        internal
        returns (Settlement.RecordProof memory record)
    {
        record.seq = 3;
        record.recordHash = recordHash;
        bytes32 target = _leaf(jobId, record.seq, recordHash);
        uint32 count;
        if (oneLeaf) {
            record.root = target;
            record.proof = new bytes32[](0);
            count = 1;
        } else {
            bytes32[] memory leaves = new bytes32[](4);
            for (uint64 seq = 0; seq < 3; ++seq) {
                leaves[seq] = _leaf(jobId, seq, keccak256(abi.encode("step record", jobId, seq)));
            }
            leaves[3] = target;
            (record.root, record.proof) = _fourLeafTree(leaves, target);
            count = 4;
        }
        vm.prank(anchorService);
        ledger.anchorBatch(keccak256(abi.encode("batch", record.root)), record.root, count);
        assertTrue(ledger.verify(target, record.proof, record.root), "the contribution record is not proven");
    }

    /// @dev OpenZeppelin StandardMerkleTree of four leaves: sorted leaves s0 < s1 < s2 < s3 are paired
    ///      (s0, s1), (s2, s3) and every pair is hashed sorted. Returns the root and `target`'s proof.
    function _fourLeafTree(bytes32[] memory leaves, bytes32 target)
        internal
        pure
        returns (bytes32 root, bytes32[] memory proof)
    {
        for (uint256 i = 1; i < 4; ++i) {
            for (uint256 j = i; j > 0 && leaves[j - 1] > leaves[j]; --j) {
                (leaves[j - 1], leaves[j]) = (leaves[j], leaves[j - 1]);
            }
        }
        bytes32 low = _hashPair(leaves[0], leaves[1]);
        bytes32 high = _hashPair(leaves[2], leaves[3]);
        root = _hashPair(low, high);
        proof = new bytes32[](2);
        for (uint256 i = 0; i < 4; ++i) {
            if (leaves[i] == target) {
                proof[0] = leaves[i ^ 1];
                proof[1] = i < 2 ? high : low;
            }
        }
    }

    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    // ------------------------------------------------------------ signatures

    function _domainSeparator(string memory name, address verifyingContract) internal view returns (bytes32) {
        return keccak256(
            abi.encode(EIP712_DOMAIN_TYPEHASH, keccak256(bytes(name)), keccak256("1"), block.chainid, verifyingContract)
        );
    }

    function _typedDigest(bytes32 domainSeparator, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }

    function _sign(address signer, bytes32 digest) internal view returns (bytes memory) {
        uint256 key = keyOf[signer];
        require(key != 0, "no private key for this signer");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    // --------------------------------------------------------------- weights

    /// @dev `count` weights in basis points summing to 10,000 from `seed` (zeros allowed).
    function _bpsFromSeed(uint256 seed, uint256 count) internal pure returns (uint16[] memory bps) {
        bps = new uint16[](count);
        uint256 left = TOTAL_BPS;
        for (uint256 i = 0; i + 1 < count; ++i) {
            seed = uint256(keccak256(abi.encode(seed, i)));
            // mostly an even-ish split, sometimes extreme (0 or everything that is left)
            uint256 mode = seed % 8;
            uint256 share = mode == 0 ? 0 : mode == 1 ? left : (seed >> 8) % (left + 1);
            // casting to 'uint16' is safe because share <= left <= 10,000
            // forge-lint: disable-next-line(unsafe-typecast)
            bps[i] = uint16(share);
            left -= share;
        }
        // casting to 'uint16' is safe because left <= 10,000
        // forge-lint: disable-next-line(unsafe-typecast)
        bps[count - 1] = uint16(left);
    }

    function _firstMembers(uint256 count) internal view returns (address[] memory parties) {
        parties = new address[](count);
        for (uint256 i = 0; i < count; ++i) {
            parties[i] = members[i];
        }
    }

    function _reversed(address[] memory list) internal pure returns (address[] memory out) {
        out = new address[](list.length);
        for (uint256 i = 0; i < list.length; ++i) {
            out[i] = list[list.length - 1 - i];
        }
    }

    function _reversed(uint16[] memory list) internal pure returns (uint16[] memory out) {
        out = new uint16[](list.length);
        for (uint256 i = 0; i < list.length; ++i) {
            out[i] = list[list.length - 1 - i];
        }
    }

    // ----------------------------------------------------- the rounding rule

    /// @dev Check `alloc` (entitlements in `bps` order) is the highest-averages (D'Hondt) split of `total`,
    ///      by its defining property rather than by re-running the contract's algorithm: it sums to `total`,
    ///      gives everyone at least the floor of its quota, and no unit could move to a member with a
    ///      higher average: for every i and every j holding units, bps_i / (a_i + 1) <= bps_j / a_j.
    ///      Returns an empty string when it holds, else what is wrong.
    function _dhondtViolation(uint16[] memory bps, uint256[] memory alloc, uint256 total)
        internal
        pure
        returns (string memory)
    {
        if (alloc.length != bps.length) return "entitlements and weights differ in length";
        uint256 sum = 0;
        for (uint256 i = 0; i < alloc.length; ++i) {
            sum += alloc[i];
            if (alloc[i] < (total * bps[i]) / TOTAL_BPS) return "an entitlement is below the floor of its quota";
        }
        if (sum != total) return "entitlements do not sum to the total deposited";
        for (uint256 i = 0; i < alloc.length; ++i) {
            for (uint256 j = 0; j < alloc.length; ++j) {
                if (alloc[j] == 0 || i == j) continue;
                if (uint256(bps[i]) * alloc[j] > uint256(bps[j]) * (alloc[i] + 1)) {
                    return "a unit went to a member with a lower average (not D'Hondt)";
                }
            }
        }
        return "";
    }
}
