"""A party's consent policy: what its node agrees to before it signs the EIP-712 consent of a job.

Each member's node holds its own policy beside its data (``<party_dir>/policy.json``) and checks
every proposed manifest against it before it signs anything; nobody signs for anybody
(docs/trust-model.md). The policy file::

    {
      "version": 1,
      "algorithms": ["psi", "fillna", ...],       # accepted algorithms (absent: every registered one)
      "datasets": ["customers.csv", ...],          # files of the data folder it exposes (absent: any)
      "reveal": {                                  # what may be revealed to another party, per algorithm
        "secure_predict": ["0xAlice..."],          # ("*": any algorithm) -> member addresses
        "biclassification_eval": ["0xAlice..."]
      },
      "chain_id": 1337,                            # the deployment it consents on (absent: any the
      "ledger": "0xLedger...",                     #   coordinator names)
      "max_gas_price_wei": 0,                      # the highest gas price of a createJob it signs
      "coordinators": ["0xCoord..."],              # the only coordinators it takes work from (absent:
                                                   #   any holder of the registry's coordinator role)
      "log_readers": ["0xApiLogReader..."]         # who may read its scrubbed job logs (absent: nobody)
    }

Without a file the node uses the default: every algorithm, any dataset of its data folder, and
nothing revealed to another party. A step reveals to every party when its algorithm does so by
design (``reveals_to_all``: PSI's intersection, the correlation matrix, VIF) and to the parties its
parameters name as ``reveal_to`` (statistics, evaluation) or ``receiver`` (PSI's key holder,
secure prediction's score receiver); a reveal to the party itself needs no permission. Outputs a
step saves must not exist yet in the party's data folder (a job never overwrites a file or
dataset); the manifest's own rules (`secureflow.compute.manifest`) already keep saves inside the
party's output folder ``out/``.

Refusal reasons name steps, algorithms, parties and relative paths only, never data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from secureflow.compute.errors import ComputeError, PolicyError
from secureflow.compute.manifest import JobManifest
from secureflow.compute.registry import get_algorithm
from secureflow.ledger.records import Address

POLICY_FILE = "policy.json"


class PartyPolicy(BaseModel):
    """What one party's node consents to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    algorithms: tuple[str, ...] | None = Field(
        default=None, description="accepted algorithms; None: every registered algorithm"
    )
    datasets: tuple[str, ...] | None = Field(
        default=None, description="files of the data folder the party exposes; None: any"
    )
    reveal: dict[str, tuple[Address, ...]] = Field(
        default_factory=dict,
        description="algorithm ('*': any) -> addresses of parties that may receive what it reveals",
    )

    spu_protocols: tuple[Literal["SEMI2K", "ABY3"], ...] = Field(
        default=("SEMI2K",),
        description="the SPU protocols of the jobs it consents to. ABY3 (three parties, honest majority) "
        "lets any two of the three reconstruct a secret-shared value, so a party consents to it only "
        'where its policy lists it, e.g. ["SEMI2K", "ABY3"]',
    )

    chain_id: int | None = Field(default=None, description="the only chain id it consents on; None: any")
    ledger: Address | None = Field(
        default=None, description="the only AuditLedger address it consents on; None: any"
    )
    max_gas_price_wei: int = Field(
        default=0,
        ge=0,
        description="the highest gas price of a createJob transaction it signs as the job's creator "
        "(0: a free-gas network such as Quorum/Besu)",
    )

    coordinators: tuple[Address, ...] | None = Field(
        default=None,
        description="the only coordinator addresses whose signed queue entries the node accepts (each must "
        "also hold the registry's coordinator role); None: any holder of that role",
    )

    log_readers: tuple[Address, ...] = Field(
        default=(),
        description="the accounts whose signed log requests (under the log-request signing domain) "
        "the node answers with its scrubbed log of a job it ran: the API's log-reader key "
        "(SECUREFLOW_LOG_READER_KEY_FILE); empty: the node serves its job logs to nobody",
    )

    def deployment_refusals(self, chain_id: int, ledger: str) -> list[str]:
        """Why this node will not sign for ``ledger`` on ``chain_id`` (empty: it will)."""
        out = []
        if self.chain_id is not None and chain_id != self.chain_id:
            out.append(f"chain id {chain_id} is not the pinned chain id {self.chain_id}")
        if self.ledger is not None and ledger.lower() != self.ledger.lower():
            out.append(f"AuditLedger {ledger} is not the pinned ledger {self.ledger}")
        return out

    def may_reveal(self, algorithm: str, to: str) -> bool:
        allowed = (*self.reveal.get(algorithm, ()), *self.reveal.get("*", ()))
        return to.lower() in {a.lower() for a in allowed}


def load_policy(party_dir: Path) -> PartyPolicy:
    """The policy in ``party_dir/policy.json``, or the default policy when there is none."""
    path = party_dir / POLICY_FILE
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return PartyPolicy()
    except OSError as exc:
        raise PolicyError(f"cannot read the policy {path}: {exc.strerror or exc}") from None
    try:
        return PartyPolicy.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise PolicyError(f"the policy {path} is not valid: {str(exc).splitlines()[0]}") from None


def write_policy(party_dir: Path, policy: PartyPolicy) -> Path:
    """Write ``policy`` as the party's policy file (used by the embedded stack to seed its dev parties)."""
    path = party_dir / POLICY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(policy.model_dump_json(indent=2, exclude_defaults=False) + "\n", encoding="utf-8")
    return path


def revealed_to(algorithm: str, params: Mapping[str, object], parties: Sequence[str]) -> list[str]:
    """The party names a step reveals results to: every party for an algorithm that reveals to all by
    design (PSI's intersection, correlation matrices), and those its ``reveal_to``/``receiver`` name."""
    try:
        to_all = get_algorithm(algorithm).reveals_to_all
    except ComputeError:
        to_all = False  # an unknown algorithm is the manifest check's to report
    names: list[str] = list(parties) if to_all else []
    reveal = params.get("reveal_to")
    if isinstance(reveal, Sequence) and not isinstance(reveal, str):
        names.extend(str(n) for n in reveal)
    receiver = params.get("receiver")
    if isinstance(receiver, str):
        names.append(receiver)
    return names


def consent_refusals(
    policy: PartyPolicy, manifest: JobManifest, address: str, data_dir: Path | None = None
) -> list[str]:
    """Why the party at ``address`` must not consent to ``manifest`` (empty: it may).

    ``data_dir``: the party's data folder, to refuse saves over files that exist there.
    """
    mine = [p.name for p in manifest.parties if p.address.lower() == address.lower()]
    if len(mine) != 1:
        return [f"{address} is not exactly one party of the manifest"]
    me = mine[0]
    addresses = {p.name: p.address for p in manifest.parties}
    reasons: list[str] = []
    if manifest.spu_protocol not in policy.spu_protocols:
        reasons.append(
            f"the job runs SPU protocol {manifest.spu_protocol}, which this party's policy does not accept "
            f"(spu_protocols: {', '.join(policy.spu_protocols)})"
        )
    for name, per_party in manifest.datasets.items():
        path = per_party.get(me)
        if path is not None and policy.datasets is not None and path not in policy.datasets:
            reasons.append(f"dataset {name!r} names {path!r}, which this party does not expose")
    for seq, step in enumerate(manifest.steps):
        where = f"step {seq} ({step.algorithm})"
        if policy.algorithms is not None and step.algorithm not in policy.algorithms:
            reasons.append(f"{where}: the algorithm is not accepted by this party's policy")
        for name in dict.fromkeys(revealed_to(step.algorithm, step.params, list(addresses))):
            to = addresses.get(name)
            if to is None or to.lower() == address.lower():
                continue  # an unknown name is the manifest check's to report; a reveal to oneself is fine
            if not policy.may_reveal(step.algorithm, to):
                reasons.append(f"{where}: reveals to {name} ({to}), which this party's policy does not allow")
        for slot, rel in step.save.items():
            if data_dir is not None and (data_dir / rel).exists():
                reasons.append(
                    f"{where}: saving {slot!r} would overwrite {rel!r} in this party's data folder"
                )
    return reasons
