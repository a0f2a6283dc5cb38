"""The ledger side of ``secureflow doctor``: the chain, the deployment and the ledger database.

`chain_checks` reaches the configured node and checks, in order: ``chain_reachable``, ``chain_id`` (the
configured one and the deployment's), ``deployment`` (the file loads), ``contract_code`` (every contract of
the deployment has code whose hash is the one the deployment pinned, built from the checked-in artifact),
``key_roles`` (each configured key holds its role in the registry, a member not suspended) and
``clock_skew`` (this machine's clock against the chain's latest block). `ledger_db_check` checks the ledger
database's migrations are at head. A check that needs an earlier one that failed is skipped, not failed
again. Every check answers within the client's request timeout: nothing here waits for the chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy.engine import make_url

from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.chain import ChainClient, ChainConfig, redact_url
from secureflow.ledger.checks import Check, failed, passed, skipped, warned
from secureflow.ledger.contracts import REGISTRY_ROLES, RegistryClient
from secureflow.ledger.deploy import Deployment, bytecode_sha256, load_deployment
from secureflow.ledger.errors import LedgerError
from secureflow.ledger.store.migrate import current_revision, head_revision

CHECKS = ("chain_reachable", "chain_id", "deployment", "contract_code", "key_roles", "clock_skew")
"""The names of `chain_checks`' checks, in order."""
MAX_SKEW_S = 30.0


@dataclass(frozen=True)
class KeyToCheck:
    """A configured key (by its address only) and the registry role it must hold."""

    label: str
    address: str
    role: str


def chain_checks(
    config: ChainConfig,
    deployment_path: Path,
    keys: Sequence[KeyToCheck] = (),
    *,
    max_skew_s: float = MAX_SKEW_S,
    now: Callable[[], float] = time.time,
) -> list[Check]:
    """The chain's checks (see the module docstring), against the node of ``config``."""
    url = redact_url(config.rpc_url)
    client = ChainClient(
        ChainConfig(rpc_url=config.rpc_url, poa=config.poa, request_timeout=min(config.request_timeout, 5.0))
    )
    try:
        node_chain_id = client.check()
        head = client.block_number()
    except LedgerError as exc:
        reach = failed(
            "chain_reachable",
            f"the JSON-RPC node at {url} does not answer ({type(exc).__name__})",
            "start the node (for the dev stack: `secureflow up`) or point SECUREFLOW_RPC_URL at one",
        )
        return [reach, *(skipped(name, "needs chain_reachable") for name in CHECKS[1:])]
    checks = [
        passed("chain_reachable", f"the node at {url} answers (chain id {node_chain_id}, block {head})")
    ]
    deployment: Deployment | None = None
    try:
        deployment = load_deployment(deployment_path)
    except LedgerError as exc:
        deployment_check = failed(
            "deployment", str(exc), "set SECUREFLOW_DEPLOYMENT to the deployment file of this chain"
        )
    else:
        deployment_check = passed("deployment", f"{deployment_path}: {', '.join(deployment.contracts)}")
    checks.append(_chain_id_check(node_chain_id, config.expected_chain_id, deployment))
    checks.append(deployment_check)
    if deployment is None:
        checks += [skipped(name, "needs deployment") for name in ("contract_code", "key_roles")]
    else:
        code = _code_check(client, deployment)
        checks.append(code)
        checks.append(
            _roles_check(client, deployment, keys)
            if not code.failed
            else skipped("key_roles", "needs contract_code")
        )
    checks.append(_skew_check(client, now(), max_skew_s))
    return checks


def _chain_id_check(node: int, expected: int | None, deployment: Deployment | None) -> Check:
    wrong = []
    if expected is not None and node != expected:
        wrong.append(f"SECUREFLOW_CHAIN_ID is {expected}")
    if deployment is not None and node != deployment.chain_id:
        wrong.append(f"the deployment is on chain {deployment.chain_id}")
    if wrong:
        return failed(
            "chain_id",
            f"the node serves chain {node} but " + " and ".join(wrong),
            "point SECUREFLOW_RPC_URL at the network the deployment is on (or fix SECUREFLOW_CHAIN_ID)",
        )
    return passed("chain_id", f"chain {node}, as configured and deployed")


def _code_check(client: ChainClient, deployment: Deployment) -> Check:
    problems = []
    for name, entry in sorted(deployment.contracts.items()):
        try:
            if entry.bytecode_sha256 != bytecode_sha256(name):
                problems.append(f"{name} was deployed from other sources than the checked-in artifact")
                continue
        except LedgerError:
            problems.append(f"{name} has no checked-in artifact")
            continue
        code = bytes(client.call_rpc(client.w3.eth.get_code, to_checksum_address(entry.address)))
        if not code:
            problems.append(f"{name}: no code at {entry.address}")
        elif entry.code_hash is not None and "0x" + keccak(code).hex() != entry.code_hash.lower():
            problems.append(f"{name}: the code at {entry.address} is not the code the deployment pinned")
    if problems:
        return failed(
            "contract_code",
            "; ".join(problems),
            "point SECUREFLOW_RPC_URL and SECUREFLOW_DEPLOYMENT at the same network (a restarted dev chain "
            "that lost its state: `secureflow up --fresh`), or redeploy with `secureflow deploy`",
        )
    return passed(
        "contract_code", f"{len(deployment.contracts)} contracts, code as pinned, built from the artifacts"
    )


def _roles_check(client: ChainClient, deployment: Deployment, keys: Sequence[KeyToCheck]) -> Check:
    if not keys:
        return skipped(
            "key_roles",
            "no key configured (SECUREFLOW_MEMBER_KEY(_FILE), SECUREFLOW_ANCHOR_KEY, "
            "SECUREFLOW_COORDINATOR_KEY_FILE)",
        )
    abi = load_artifact("ConsortiumRegistry").abi
    registry = RegistryClient(client.contract(deployment.address_of("ConsortiumRegistry"), abi, "registry"))
    found, problems = [], []
    for key in keys:
        roles = [name for name in REGISTRY_ROLES if client.call_rpc(registry.has_role, name, key.address)]
        suspended = key.role == "member" and bool(client.call_rpc(registry.is_suspended, key.address))
        found.append(f"{key.label} {key.address}: {', '.join(roles) or 'no role'}")
        if key.role not in roles:
            problems.append(f"{key.label} {key.address} lacks the {key.role} role")
        elif suspended:
            problems.append(f"{key.label} {key.address} is a suspended member")
    if problems:
        return failed(
            "key_roles",
            "; ".join(problems),
            "ask the registry's admin: `secureflow members add ADDRESS` / `reinstate ADDRESS` / "
            "`grant-role ADDRESS ROLE` (anchor, coordinator)",
        )
    return passed("key_roles", "; ".join(found))


def _skew_check(client: ChainClient, now: float, max_skew_s: float) -> Check:
    stamp = int(client.call_rpc(client.w3.eth.get_block, "latest")["timestamp"])
    ahead = stamp - now
    if ahead > max_skew_s:
        return failed(
            "clock_skew",
            f"the chain's latest block is {ahead:.0f} s ahead of this machine's clock",
            "synchronise this machine's clock (NTP: `timedatectl set-ntp true`)",
        )
    if -ahead > max_skew_s:
        return warned(
            "clock_skew",
            f"the chain's latest block is {-ahead:.0f} s old: the chain mines no blocks while idle (a dev "
            "chain) or this machine's clock is ahead",
            "on a network with a block period, check this machine's clock (NTP) and the node's sync",
        )
    return passed("clock_skew", f"the latest block is within {max_skew_s:.0f} s of this machine's clock")


def ledger_db_check(database_url: str | None) -> Check:
    """``ledger_db``: the ledger database exists and its migrations are at head."""
    if not database_url:
        return skipped("ledger_db", "SECUREFLOW_DATABASE_URL is not set")
    url = make_url(database_url)
    fix = f"`secureflow db upgrade --url {url.render_as_string(hide_password=True)}`"
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return failed("ledger_db", f"there is no database file at {url.database}", f"create it: {fix}")
    try:
        revision = current_revision(database_url)
    except LedgerError as exc:
        return failed("ledger_db", str(exc), "check the database is reachable and SECUREFLOW_DATABASE_URL")
    if revision != head_revision():
        return failed("ledger_db", f"the ledger tables are at {revision}, the code at {head_revision()}", fix)
    return passed("ledger_db", f"migrations at head ({revision})")
