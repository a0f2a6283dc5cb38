// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {AuditLedger} from "../../src/AuditLedger.sol";
import {ConsortiumRegistry} from "../../src/ConsortiumRegistry.sol";

/// @title AuditLedgerFixture
/// @notice A registry and an audit ledger deployed as `ledger/deploy.py` deploys them, an anchoring service,
///         members with known keys, and helpers computed from the fixed formats (not from the contract): the
///         job id rule keccak256(abi.encode(creator, manifestHash, salt)), the EIP-712 JobConsent digest and
///         the StandardMerkleTree leaf of (jobId, seq, recordHash) of DESIGN.md "Records and proofs".
abstract contract AuditLedgerFixture is Test {
    uint256 internal constant MEMBER_COUNT = 5;
    bytes32 internal constant EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant JOB_CONSENT_TYPEHASH = keccak256("JobConsent(bytes32 jobId,bytes32 manifestHash)");

    ConsortiumRegistry internal registry;
    AuditLedger internal ledger;
    address internal anchorService;
    address internal outsider;
    address[] internal members;
    uint256[] internal memberKeys;

    function _deployLedger() internal {
        registry = new ConsortiumRegistry(address(this));
        ledger = new AuditLedger(registry);
        anchorService = makeAddr("anchor-service");
        outsider = makeAddr("outsider");
        registry.grantRole(registry.ANCHOR_ROLE(), anchorService);
        for (uint256 i = 0; i < MEMBER_COUNT; ++i) {
            (address member, uint256 key) = makeAddrAndKey(string.concat("ledger-member-", vm.toString(i)));
            registry.registerMember(member, keccak256(abi.encode("member metadata", i)));
            members.push(member);
            memberKeys.push(key);
        }
    }

    function _jobId(address creator, bytes32 manifestHash, bytes32 salt) internal pure returns (bytes32) {
        return keccak256(abi.encode(creator, manifestHash, salt));
    }

    function _consentDigest(bytes32 jobId, bytes32 manifestHash) internal view returns (bytes32) {
        bytes32 domain = keccak256(
            abi.encode(
                EIP712_DOMAIN_TYPEHASH,
                keccak256("SecureflowAuditLedger"),
                keccak256("1"),
                block.chainid,
                address(ledger)
            )
        );
        bytes32 structHash = keccak256(abi.encode(JOB_CONSENT_TYPEHASH, jobId, manifestHash));
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    /// @dev Member `index`'s EIP-712 consent to (jobId, manifestHash).
    function _consent(uint256 index, bytes32 jobId, bytes32 manifestHash) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(memberKeys[index], _consentDigest(jobId, manifestHash));
        return abi.encodePacked(r, s, v);
    }

    function _leaf(bytes32 jobId, uint64 seq, bytes32 recordHash) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(jobId, seq, recordHash))));
    }

    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    function _members(uint256 count) internal view returns (address[] memory parties) {
        parties = new address[](count);
        for (uint256 i = 0; i < count; ++i) {
            parties[i] = members[i];
        }
    }
}
