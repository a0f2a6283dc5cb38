"""ConsortiumRegistry on a real anvil: membership, suspension, roles, events and every denial."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError

from secureflow.ledger.artifacts import load_artifact

if TYPE_CHECKING:
    from tests.contracts.conftest import ContractsEnv

ZERO_ADDRESS = "0x" + "00" * 20
DEFAULT_ADMIN_ROLE = b"\x00" * 32
NEW_ACCOUNT = Web3.to_checksum_address("0x" + "ab" * 20)


def test_role_constants_and_admin(env: ContractsEnv) -> None:
    registry = env.registry.functions
    assert registry.MEMBER_ROLE().call() == keccak(b"MEMBER_ROLE")
    assert registry.ANCHOR_ROLE().call() == keccak(b"ANCHOR_ROLE")
    assert registry.AUDITOR_ROLE().call() == keccak(b"AUDITOR_ROLE")
    assert registry.hasRole(DEFAULT_ADMIN_ROLE, env.admin.address).call()
    for role in (keccak(b"MEMBER_ROLE"), keccak(b"ANCHOR_ROLE"), keccak(b"AUDITOR_ROLE")):
        assert registry.getRoleAdmin(role).call() == DEFAULT_ADMIN_ROLE
    assert registry.isAnchorService(env.anchor.address).call()
    assert not registry.isAnchorService(env.member_a.address).call()


def test_constructor_rejects_zero_admin(env: ContractsEnv) -> None:
    artifact = load_artifact("ConsortiumRegistry")
    factory = env.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    data = factory.constructor(ZERO_ADDRESS).data_in_transaction
    try:
        env.w3.eth.call({"from": env.admin.address, "data": data})
    except ContractLogicError as error:
        assert env.decode_revert(error.data) == ("ZeroAddress", ())
    else:
        raise AssertionError("deploying with a zero admin did not revert")


def test_register_member(env: ContractsEnv) -> None:
    metadata = keccak(b"new member metadata")
    receipt = env.ok(env.registry.functions.registerMember(NEW_ACCOUNT, metadata), env.admin)
    events = env.events(receipt, env.registry, "MemberRegistered")
    assert events == [{"account": env.w3.to_checksum_address(NEW_ACCOUNT), "metadataHash": metadata}]
    granted = env.events(receipt, env.registry, "RoleGranted")
    assert granted[0]["role"] == keccak(b"MEMBER_ROLE")
    assert env.registry.functions.isActiveMember(NEW_ACCOUNT).call()
    assert env.registry.functions.hasRole(keccak(b"MEMBER_ROLE"), NEW_ACCOUNT).call()


def test_register_member_denials(env: ContractsEnv) -> None:
    fns = env.registry.functions
    assert env.revert(fns.registerMember(NEW_ACCOUNT, b"\x01" * 32), env.member_a) == (
        "AccessControlUnauthorizedAccount",
        (env.member_a.address.lower(), DEFAULT_ADMIN_ROLE),
    )
    assert env.revert(fns.registerMember(ZERO_ADDRESS, b"\x01" * 32), env.admin) == ("ZeroAddress", ())
    assert env.revert(fns.registerMember(env.member_a.address, b"\x01" * 32), env.admin) == (
        "AlreadyMember",
        (env.member_a.address.lower(),),
    )


def test_suspend_and_reinstate(env: ContractsEnv) -> None:
    fns = env.registry.functions
    member = env.member_b.address
    receipt = env.ok(fns.suspendMember(member), env.admin)
    assert env.events(receipt, env.registry, "MemberSuspended") == [{"account": member}]
    assert not fns.isActiveMember(member).call()
    assert fns.isSuspended(member).call()
    assert fns.hasRole(keccak(b"MEMBER_ROLE"), member).call()
    assert env.revert(fns.suspendMember(member), env.admin) == ("AlreadySuspended", (member.lower(),))

    receipt = env.ok(fns.reinstateMember(member), env.admin)
    assert env.events(receipt, env.registry, "MemberReinstated") == [{"account": member}]
    assert fns.isActiveMember(member).call()
    assert env.revert(fns.reinstateMember(member), env.admin) == ("NotSuspended", (member.lower(),))


def test_suspend_and_reinstate_denials(env: ContractsEnv) -> None:
    fns = env.registry.functions
    outsider = env.outsider.address
    assert env.revert(fns.suspendMember(outsider), env.admin) == ("NotMember", (outsider.lower(),))
    assert env.revert(fns.reinstateMember(outsider), env.admin) == ("NotMember", (outsider.lower(),))
    for fn in (fns.suspendMember(env.member_a.address), fns.reinstateMember(env.member_a.address)):
        name, args = env.revert(fn, env.member_b)
        assert name == "AccessControlUnauthorizedAccount"
        assert args == (env.member_b.address.lower(), DEFAULT_ADMIN_ROLE)


def test_revoke_member_role_and_reregister(env: ContractsEnv) -> None:
    fns = env.registry.functions
    member = env.member_c.address
    env.ok(fns.suspendMember(member), env.admin)
    env.ok(fns.revokeRole(keccak(b"MEMBER_ROLE"), member), env.admin)
    assert not fns.isActiveMember(member).call()
    env.ok(fns.registerMember(member, keccak(b"again")), env.admin)
    assert fns.isActiveMember(member).call()
    assert not fns.isSuspended(member).call()


def test_anchor_and_auditor_roles(env: ContractsEnv) -> None:
    fns = env.registry.functions
    auditor_role, anchor_role = keccak(b"AUDITOR_ROLE"), keccak(b"ANCHOR_ROLE")
    receipt = env.ok(fns.grantRole(auditor_role, env.outsider.address), env.admin)
    assert env.events(receipt, env.registry, "RoleGranted") == [
        {"role": auditor_role, "account": env.outsider.address, "sender": env.admin.address}
    ]
    assert fns.isAuditor(env.outsider.address).call()
    assert not fns.isActiveMember(env.outsider.address).call()

    receipt = env.ok(fns.revokeRole(anchor_role, env.anchor.address), env.admin)
    assert env.events(receipt, env.registry, "RoleRevoked")[0]["account"] == env.anchor.address
    assert not fns.isAnchorService(env.anchor.address).call()

    name, args = env.revert(fns.grantRole(anchor_role, env.member_a.address), env.member_a)
    assert (name, args) == (
        "AccessControlUnauthorizedAccount",
        (env.member_a.address.lower(), DEFAULT_ADMIN_ROLE),
    )
    name, _ = env.revert(fns.revokeRole(auditor_role, env.outsider.address), env.member_a)
    assert name == "AccessControlUnauthorizedAccount"
    assert fns.supportsInterface(bytes.fromhex("7965db0b")).call()  # IAccessControl


def test_coordinator_role(env: ContractsEnv) -> None:
    fns = env.registry.functions
    coordinator_role = keccak(b"COORDINATOR_ROLE")
    assert fns.COORDINATOR_ROLE().call() == coordinator_role
    assert fns.getRoleAdmin(coordinator_role).call() == DEFAULT_ADMIN_ROLE
    assert not fns.isCoordinator(env.outsider.address).call()
    name, _ = env.revert(fns.grantRole(coordinator_role, env.outsider.address), env.member_a)
    assert name == "AccessControlUnauthorizedAccount"
    env.ok(fns.grantRole(coordinator_role, env.outsider.address), env.admin)
    assert fns.isCoordinator(env.outsider.address).call()
    assert not fns.isAnchorService(env.outsider.address).call()
    env.ok(fns.revokeRole(coordinator_role, env.outsider.address), env.admin)
    assert not fns.isCoordinator(env.outsider.address).call()
