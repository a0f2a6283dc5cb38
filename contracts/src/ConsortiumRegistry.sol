// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title ConsortiumRegistry
/// @notice Who belongs to the secureflow consortium and in which role: members (submit and co-sign jobs),
///         the anchoring service (anchors batch roots), auditors (read-only) and job coordinators
///         (whose signed work orders the members' nodes accept). The admin
///         (DEFAULT_ADMIN_ROLE) registers, suspends and reinstates members and grants the other roles
///         through AccessControl's grantRole / revokeRole.
contract ConsortiumRegistry is AccessControl {
    /// @notice Role of a consortium member.
    bytes32 public constant MEMBER_ROLE = keccak256("MEMBER_ROLE");
    /// @notice Role of the anchoring service that writes batch roots to the audit ledger.
    bytes32 public constant ANCHOR_ROLE = keccak256("ANCHOR_ROLE");
    /// @notice Role of an auditor (read-only on-chain; checked by the off-chain API).
    bytes32 public constant AUDITOR_ROLE = keccak256("AUDITOR_ROLE");
    /// @notice Role of a job coordinator: the members' nodes act only on queue messages signed by a
    ///         holder of this role (checked off-chain by each node against the registry it pinned).
    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");

    /// @notice The zero address was given where an account is required.
    error ZeroAddress();
    /// @notice `account` already holds MEMBER_ROLE.
    error AlreadyMember(address account);
    /// @notice `account` does not hold MEMBER_ROLE.
    error NotMember(address account);
    /// @notice `account` is already suspended.
    error AlreadySuspended(address account);
    /// @notice `account` is not suspended.
    error NotSuspended(address account);

    /// @notice A member was registered with the hash of its (off-chain) metadata.
    event MemberRegistered(address indexed account, bytes32 metadataHash);
    /// @notice A member was suspended: it keeps MEMBER_ROLE but is no longer active.
    event MemberSuspended(address indexed account);
    /// @notice A suspended member was reinstated.
    event MemberReinstated(address indexed account);

    mapping(address account => bool) private _suspended;

    /// @param admin The account that receives DEFAULT_ADMIN_ROLE (admin of every other role).
    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Register `account` as a consortium member (admin only).
    /// @param account The member's address.
    /// @param metadataHash Hash of the member's off-chain metadata (name, endpoints, keys).
    function registerMember(address account, bytes32 metadataHash) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (account == address(0)) revert ZeroAddress();
        if (hasRole(MEMBER_ROLE, account)) revert AlreadyMember(account);
        delete _suspended[account];
        _grantRole(MEMBER_ROLE, account);
        emit MemberRegistered(account, metadataHash);
    }

    /// @notice Suspend a member (admin only): it stays registered but is not active.
    /// @param account The member to suspend.
    function suspendMember(address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (!hasRole(MEMBER_ROLE, account)) revert NotMember(account);
        if (_suspended[account]) revert AlreadySuspended(account);
        _suspended[account] = true;
        emit MemberSuspended(account);
    }

    /// @notice Reinstate a suspended member (admin only).
    /// @param account The member to reinstate.
    function reinstateMember(address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (!hasRole(MEMBER_ROLE, account)) revert NotMember(account);
        if (!_suspended[account]) revert NotSuspended(account);
        _suspended[account] = false;
        emit MemberReinstated(account);
    }

    /// @notice Whether `account` is a member and not suspended.
    /// @param account The account to check.
    /// @return True for an active member.
    function isActiveMember(address account) external view returns (bool) {
        return hasRole(MEMBER_ROLE, account) && !_suspended[account];
    }

    /// @notice Whether `account` is suspended.
    /// @param account The account to check.
    /// @return True if the account is suspended.
    function isSuspended(address account) external view returns (bool) {
        return _suspended[account];
    }

    /// @notice Whether `account` is the anchoring service (holds ANCHOR_ROLE).
    /// @param account The account to check.
    /// @return True if the account may anchor batches.
    function isAnchorService(address account) external view returns (bool) {
        return hasRole(ANCHOR_ROLE, account);
    }

    /// @notice Whether `account` is an auditor (holds AUDITOR_ROLE).
    /// @param account The account to check.
    /// @return True if the account is an auditor.
    function isAuditor(address account) external view returns (bool) {
        return hasRole(AUDITOR_ROLE, account);
    }

    /// @notice Whether `account` is a job coordinator (holds COORDINATOR_ROLE).
    /// @param account The account to check.
    /// @return True if the members' nodes may accept work signed by this account.
    function isCoordinator(address account) external view returns (bool) {
        return hasRole(COORDINATOR_ROLE, account);
    }
}
