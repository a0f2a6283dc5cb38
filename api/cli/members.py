"""``secureflow members``: administer a consortium's registry from the command line.

What ``secureflow up`` does for its dev consortium, for a real one: ``list`` the accounts and their roles
(read-only, from the registry's events and current state), ``add`` a member, ``suspend`` / ``reinstate``
one, and ``grant-role`` / ``revoke-role`` the anchoring service (``anchor``), ``auditor``, ``coordinator``
(a job coordinator) or ``admin`` role. Every command works against a node (``--rpc-url``) and the
deployment file the consortium pinned (``--deployment``); writes are signed with the registry admin's key
from ``SECUREFLOW_ADMIN_KEY`` (never on the command line, never printed). The contract checks every write
again (only its admin may); a refusal is shown with the contract's custom error (e.g. ``AlreadyMember``)
and a hint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from secureflow.api.cli.errors import CliError, friendly_errors
from secureflow.api.cli.errors import plain_console as console

if TYPE_CHECKING:  # web3 takes seconds to import: commands import the chain stack when they run
    from secureflow.ledger.contracts import RegistryClient

members_app = typer.Typer(no_args_is_help=True, help="Consortium members and roles in the on-chain registry.")

ADMIN_KEY_ENV = "SECUREFLOW_ADMIN_KEY"
GrantableRole = Literal["anchor", "auditor", "coordinator", "admin"]

RpcUrl = Annotated[
    str,
    typer.Option(
        "--rpc-url", envvar="SECUREFLOW_RPC_URL", help="the node's JSON-RPC URL", show_default=False
    ),
]
DeploymentFile = Annotated[
    Path, typer.Option("--deployment", envvar="SECUREFLOW_DEPLOYMENT", help="the pinned deployment file")
]
Account_ = Annotated[
    str, typer.Argument(help="the account's address (0x + 40 hex digits)", show_default=False)
]
DEFAULT_DEPLOYMENT = Path(".secureflow/deployment.json")


def _address(value: str) -> str:
    from eth_utils.address import is_address, to_checksum_address

    if not is_address(value):
        raise CliError(f"{value!r} is not an address", hint="give 0x + 40 hex digits")
    return str(to_checksum_address(value))


def _registry(rpc_url: str, deployment_file: Path, *, admin: bool) -> tuple[RegistryClient, int]:
    """The registry of the pinned deployment (with the admin's sender for writes) and its deploy block."""
    from eth_account import Account

    from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
    from secureflow.ledger.contracts import RegistryClient
    from secureflow.ledger.deploy import connect, load_deployment
    from secureflow.ledger.nonces import ChainNonceSource

    deployment = load_deployment(deployment_file)
    client = ChainClient(ChainConfig(rpc_url=rpc_url, expected_chain_id=deployment.chain_id))
    client.check()
    sender = None
    if admin:
        key = os.environ.get(ADMIN_KEY_ENV, "").strip()
        if not key:
            raise CliError(
                f"{ADMIN_KEY_ENV} is not set",
                hint="export the private key of the registry's admin (the deployer unless `deploy --admin`)",
            )
        try:
            Account.from_key(key)
        except (ValueError, TypeError):
            raise CliError(f"{ADMIN_KEY_ENV} is not a private key", hint="give 0x + 64 hex digits") from None
        sender = TransactionSender(client, key, ChainNonceSource(client.w3))
    registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), sender)
    if sender is not None and not registry.has_role("admin", sender.address):
        raise CliError(
            f"{sender.address} ({ADMIN_KEY_ENV}) is not an admin of the registry {registry.address}",
            hint="use the key of the account that deployed the contracts (or was granted the admin role)",
        )
    return registry, deployment.deploy_block


def _done(what: str, receipt: Mapping[str, Any]) -> None:
    console.print(f"{what} (tx 0x{bytes(receipt['transactionHash']).hex()})")


@members_app.command("list")
@friendly_errors
def list_members(
    rpc_url: RpcUrl,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT,
    json_output: Annotated[bool, typer.Option("--json", help="one JSON document for scripts")] = False,
) -> None:
    """Every account that was granted a role, with the roles it holds now and whether it is suspended."""
    registry, deploy_block = _registry(rpc_url, deployment, admin=False)
    accounts = registry.accounts(deploy_block)
    if json_output:
        typer.echo(json.dumps({"registry": registry.address, "accounts": [a.model_dump() for a in accounts]}))
        return
    console.print(f"registry {registry.address}: {len(accounts)} account{'s' if len(accounts) != 1 else ''}")
    for account in accounts:
        state = " (suspended)" if account.suspended else ""
        console.print(f"  {account.address}  {', '.join(account.roles) or 'no role'}{state}")


@members_app.command("add")
@friendly_errors
def add(
    account: Account_,
    rpc_url: RpcUrl,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT,
    name: Annotated[
        str | None, typer.Option(help="a label; its keccak256 is stored on chain as the metadata hash")
    ] = None,
) -> None:
    """Register an account as an active member."""
    from eth_utils.crypto import keccak

    address = _address(account)
    registry, _ = _registry(rpc_url, deployment, admin=True)
    metadata = keccak(text=name) if name else b"\0" * 32
    label = f" ({name})" if name else ""
    _done(f"{address} registered as a member{label}", registry.register_member(address, metadata))


@members_app.command("suspend")
@friendly_errors
def suspend(account: Account_, rpc_url: RpcUrl, deployment: DeploymentFile = DEFAULT_DEPLOYMENT) -> None:
    """Suspend a member: it can no longer create or consent to jobs (the API refuses it too)."""
    address = _address(account)
    registry, _ = _registry(rpc_url, deployment, admin=True)
    _done(f"{address} suspended", registry.suspend_member(address))


@members_app.command("reinstate")
@friendly_errors
def reinstate(account: Account_, rpc_url: RpcUrl, deployment: DeploymentFile = DEFAULT_DEPLOYMENT) -> None:
    """Reinstate a suspended member."""
    address = _address(account)
    registry, _ = _registry(rpc_url, deployment, admin=True)
    _done(f"{address} reinstated", registry.reinstate_member(address))


@members_app.command("grant-role")
@friendly_errors
def grant_role(
    account: Account_,
    role: Annotated[
        GrantableRole, typer.Argument(help="anchor (the anchoring service), auditor, coordinator or admin")
    ],
    rpc_url: RpcUrl,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT,
) -> None:
    """Grant a role; `anchor` lets the account anchor batches, record models and close jobs."""
    address = _address(account)
    registry, _ = _registry(rpc_url, deployment, admin=True)
    if registry.has_role(role, address):
        raise CliError(
            f"{address} holds the {role} role already", hint="`secureflow members list` shows roles"
        )
    _done(f"{address} granted the {role} role", registry.grant_role(role, address))


@members_app.command("revoke-role")
@friendly_errors
def revoke_role(
    account: Account_,
    role: Annotated[GrantableRole, typer.Argument(help="anchor, auditor, coordinator or admin")],
    rpc_url: RpcUrl,
    deployment: DeploymentFile = DEFAULT_DEPLOYMENT,
) -> None:
    """Revoke a role (members leave by `suspend`)."""
    address = _address(account)
    registry, _ = _registry(rpc_url, deployment, admin=True)
    if not registry.has_role(role, address):
        raise CliError(
            f"{address} does not hold the {role} role", hint="`secureflow members list` shows roles"
        )
    _done(f"{address} no longer holds the {role} role", registry.revoke_role(role, address))
