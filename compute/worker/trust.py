"""What a node checks before it acts on an entry of its queue: a coordinator's signature, then the chain.

`QueueGuard.admit` keeps an entry only when it is addressed to this party, signed
(`secureflow.ledger.queue_signing`) by an account that holds the coordinator role in the registry of
the deployment the node pinned (and, when the node's policy lists ``coordinators``, is one of them),
and carries a counter above every counter this node saw in its session (a replay is refused).
`QueueGuard.job_refusal` lets a request of a job through only when the chain says the job exists and
is open, this member is one of its parties and consented, and the session's parties (the members the
coordinator named for its party table) are exactly the job's on-chain parties.

The chain is reached through an `Authority` (`secureflow.ledger.node_authority.ChainAuthority` in
``secureflow node``): compute never imports web3.
"""

from __future__ import annotations

import json
import os
import secrets
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from secureflow.ledger.queue_signing import entry_signer

JOB_OPS = frozenset({"open_job", "verify_models", "load_models", "run_step", "sign", "write_model_meta"})
"""Worker requests that act on a job: each needs the job open on chain with this member's consent."""
OPEN = 1
"""``AuditLedger.JobStatus.Open``."""
MAX_REMEMBERED_SESSIONS = 4096
"""Sessions whose last counter a node remembers (a replayed start of a finished session is refused)."""


class Authority(Protocol):
    """The chain as a node sees it (the registry and ledger of its pinned deployment)."""

    def is_coordinator(self, address: str) -> bool: ...
    def is_active_member(self, address: str) -> bool: ...
    def job_standing(self, job_id: str, member: str) -> tuple[int, tuple[str, ...], bool]: ...


def member_key(party_dir: Path) -> str:
    """The member key in ``party_dir/secrets/member.key`` (0x + 64 hex; created as the worker does)."""
    path = party_dir / "secrets" / "member.key"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32).hex().encode())
    return "0x" + path.read_text().strip().removeprefix("0x")


def member_address(party_dir: Path) -> str:
    """The member address of the key in ``party_dir/secrets/member.key`` (created as the worker does)."""
    from eth_account import Account

    return str(Account.from_key(member_key(party_dir)).address).lower()


def request_job_id(request: Mapping[str, Any]) -> str | None:
    """The job a worker request acts on (None when it names none or cannot be read)."""
    op = request.get("op")
    try:
        if op == "sign":
            value = json.loads(str(request["record"]))["job_id"]
        elif op == "write_model_meta":
            value = request["meta"]["lineage"]["job_id"]
        else:
            value = request["job_id"]
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(value, str) or len(value) != 66 or not value.startswith("0x"):
        return None
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        return None
    return value.lower()


class QueueGuard:
    """One node's checks of its queue entries (signature, coordinator role, counter) and job requests."""

    def __init__(
        self,
        party: str,
        member: str,
        authority: Authority,
        *,
        coordinators: Sequence[str] | None = None,
    ) -> None:
        self.party = party
        self.member = member.lower()
        self.authority = authority
        self.coordinators = None if coordinators is None else {a.lower() for a in coordinators}
        self._counters: OrderedDict[str, int] = OrderedDict()

    def admit(self, entry: Mapping[str, Any]) -> str | None:
        """Why ``entry`` must be dropped (None: act on it). Records its counter when it is admitted."""
        if entry.get("party") != self.party:
            return "addressed to another party"
        signer = entry_signer(entry)
        if signer is None:
            return "no valid coordinator signature"
        if self.coordinators is not None and signer not in self.coordinators:
            return f"signed by {signer}, not a coordinator this node's policy lists"
        try:
            authorised = self.authority.is_coordinator(signer)
        except Exception as exc:  # the chain is unreachable: never a guess
            return f"cannot check the coordinator role on chain ({type(exc).__name__})"
        if not authorised:
            return f"signed by {signer}, which holds no coordinator role in the pinned registry"
        ctr, session = entry.get("ctr"), str(entry.get("session"))
        if not isinstance(ctr, int) or isinstance(ctr, bool):
            return "no counter"
        last = self._counters.get(session)
        if last is not None and ctr <= last:
            return f"counter {ctr} already seen in this session (a replay)"
        self._counters[session] = ctr
        self._counters.move_to_end(session)
        while len(self._counters) > MAX_REMEMBERED_SESSIONS:
            self._counters.popitem(last=False)
        return None

    def job_refusal(
        self, request: Mapping[str, Any], table: Sequence[str], members: Mapping[str, Any] | None
    ) -> str | None:
        """Why this node refuses the job request ``request`` of a session with party names ``table`` and
        the coordinator's ``members`` (party name -> member address); None when the chain allows it."""
        job_id = request_job_id(request)
        if job_id is None:
            return f"the {request.get('op')} request names no job"
        try:
            status, parties, consented = self.authority.job_standing(job_id, self.member)
        except Exception as exc:
            return f"cannot read job {job_id} on chain ({type(exc).__name__}); retry when it is reachable"
        if status == 0:
            return f"job {job_id} does not exist on chain"
        if status != OPEN:
            return f"job {job_id} is not open on chain (status {status})"
        if self.member not in parties or not consented:
            return f"this member ({self.member}) has not consented to job {job_id} on chain"
        if not isinstance(members, Mapping) or sorted(members) != sorted(table):
            return "the session's parties are not named with their member addresses"
        named = sorted(str(a).lower() for a in members.values())
        if str(members.get(self.party, "")).lower() != self.member or named != sorted(parties):
            return f"the session's parties are not job {job_id}'s parties on chain"
        return None
