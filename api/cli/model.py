"""``secureflow model verify``: check one party's stored model before it is used or handed on.

Run by a member on its own host, next to its party folder (``--data-dir``, the folder ``secureflow node``
uses: ``models/``, ``secrets/``), against a node and the deployment it pins (as ``secureflow verify``).
Checks, in order, each printed with its result:

* ``metadata``: ``meta.json`` hashes to its ``model_hash`` field, and its model id is the one its lineage
  (job id, step, output name) gives;
* ``version``: the metadata holds the version asked for (``--version``; default: the metadata's);
* ``share_digests``: this party's own share files hash, with its salt for the job in the model's lineage
  (derived from the party's secret, which never leaves the folder), to its salted digest in the metadata;
  other parties' shares are theirs to check;
* ``deployment``: the pinned ledger's code is on the node;
* ``onchain_hash``: the metadata's hash is the ``modelHash`` the ledger holds for that job, model and
  version (a version without one is "not anchored": a failure, never trusted);
* ``lineage``: the job that produced the model exists on chain with exactly the model's parties.

Exit code 0 only if every check passed; 1 otherwise (the failing checks are named). Nothing of a share's
contents is printed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict

from secureflow.api.cli.errors import CliError, friendly_errors
from secureflow.api.cli.errors import plain_console as console
from secureflow.api.cli.options import PinChainId, PinCodeHash, PinDeployment, PinLedger, PinRegistry

if TYPE_CHECKING:  # the chain stack (web3) takes seconds to import: the command imports it when it runs
    from secureflow.ledger.verify import Check, PinnedDeployment

model_app = typer.Typer(no_args_is_help=True, help="A party's stored models (integrity against the chain).")

_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class ModelVerdict(BaseModel):
    """The outcome of ``secureflow model verify`` (its ``--json`` output)."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    version: int | None
    party: str | None
    address: str
    pinned: str
    ok: bool
    failed: list[str]
    checks: list[Check]


def _party_identity(data_dir: Path) -> tuple[bytes, str]:
    """This party's salt and member address, from its own folder (as its worker keeps them)."""
    from eth_account import Account

    secrets = data_dir / "secrets"
    try:
        salt = (secrets / "salt").read_bytes()
        key = (secrets / "member.key").read_text().strip()
    except OSError:
        raise CliError(
            f"no party secrets (salt, member.key) in {secrets}",
            hint="give --data-dir the party's own folder (the one its `secureflow node --data-dir` uses), "
            "on that party's host",
        ) from None
    return salt, str(Account.from_key(key).address)


def _failed(name: str, detail: str) -> Check:
    from secureflow.ledger.verify import Check

    return Check(name=name, status="failed", detail=detail)


def _passed(name: str, detail: str) -> Check:
    from secureflow.ledger.verify import Check

    return Check(name=name, status="passed", detail=detail)


def _metadata_check(model_id: str, meta: dict[str, Any]) -> Check:
    from secureflow.compute.errors import ModelIntegrityError
    from secureflow.compute.models import anchor_key, check_meta_hash, model_id_for

    try:
        check_meta_hash(meta)
        job_id, meta_id, _version = anchor_key(meta)
    except ModelIntegrityError as exc:
        return _failed("metadata", exc.args[0])
    if meta_id != model_id:
        return _failed("metadata", f"meta.json names model {meta_id!r}, but it is stored as {model_id!r}")
    lineage = meta.get("lineage") or {}
    expected = model_id_for(job_id, int(lineage.get("seq", -1)), str(meta.get("name")))
    if expected != model_id:
        return _failed(
            "metadata",
            f"model id {model_id!r} is not the id of output {meta.get('name')!r} of job {job_id} step "
            f"{lineage.get('seq')} ({expected!r})",
        )
    return _passed(
        "metadata",
        f"meta.json hashes to its model_hash {meta.get('model_hash')}; trained by job {job_id} step "
        f"{lineage.get('seq')}",
    )


def _shares_check(
    model_dir: Path, meta: dict[str, Any], salt: bytes, address: str
) -> tuple[Check, str | None]:
    from secureflow.compute.errors import ModelError
    from secureflow.compute.models import anchor_key, verify_own_shares
    from secureflow.ledger.signing import job_salt

    parties = {str(a).lower(): str(p) for p, a in (meta.get("parties") or {}).items()}
    party = parties.get(address.lower())
    if party is None:
        return _failed("share_digests", f"this folder's member {address} is not a party of the model"), None
    try:
        job_id = anchor_key(meta)[0]  # the share digests are salted with the training job's salt
        detail = verify_own_shares(model_dir, meta, party=party, address=address, salt=job_salt(salt, job_id))
    except ModelError as exc:
        return _failed("share_digests", exc.args[0]), party
    return _passed("share_digests", detail), party


def verify_model(
    data_dir: Path, model_id: str, version: int | None, rpc_url: str, pin: PinnedDeployment
) -> ModelVerdict:
    """Every check of one stored model of the party whose folder is ``data_dir``."""
    from secureflow.ledger.verify import Check, check_model_anchor

    ModelVerdict.model_rebuild(_types_namespace={"Check": Check})  # Check imports web3: resolved late
    if not _MODEL_ID.match(model_id):
        raise CliError(f"{model_id!r} is not a model id", hint="see the ids in the party's models/ folder")
    model_dir = data_dir / "models" / model_id
    meta_path = model_dir / "meta.json"
    if not meta_path.is_file():
        raise CliError(
            f"no model {model_id!r} in {data_dir / 'models'}",
            hint="give the model id as in the party's models/ folder (and --data-dir that party's folder)",
        )
    salt, address = _party_identity(data_dir)
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError):
        raise CliError(
            f"{meta_path} is not a JSON object", hint="restore the model from a trusted copy"
        ) from None
    checks = [_metadata_check(model_id, meta)]
    held = meta.get("version")
    wanted = version if version is not None else held
    if isinstance(held, int) and held == wanted:
        checks.append(_passed("version", f"meta.json holds version {held}"))
    else:
        checks.append(_failed("version", f"meta.json holds version {held!r}, not version {wanted}"))
    shares, party = _shares_check(model_dir, meta, salt, address)
    checks.append(shares)
    job_id = (meta.get("lineage") or {}).get("job_id")
    if isinstance(job_id, str) and isinstance(wanted, int):
        checks.extend(
            check_model_anchor(
                rpc_url,
                pin,
                job_id=job_id.lower(),
                model_id=model_id,
                version=wanted,
                model_hash=str(meta.get("model_hash", "")),
                parties=[str(a) for a in (meta.get("parties") or {}).values()],
            )
        )
    else:
        why = "not checked: the metadata names no job id or version"
        checks.extend(
            Check(name=name, status="skipped", detail=why)
            for name in ("deployment", "onchain_hash", "lineage")
        )
    failed = [c.name for c in checks if c.status == "failed"]
    ok = not failed and all(c.status == "passed" for c in checks)
    return ModelVerdict(
        model_id=model_id,
        version=wanted if isinstance(wanted, int) else None,
        party=party,
        address=address,
        pinned=pin.describe(),
        ok=ok,
        failed=failed,
        checks=checks,
    )


@model_app.command("verify")
@friendly_errors
def verify(
    model_id: Annotated[str, typer.Argument(help="the model id (a folder under the party's models/)")],
    data_dir: Annotated[
        Path, typer.Option(help="the party's own folder (models/, secrets/), as `secureflow node --data-dir`")
    ],
    rpc: Annotated[
        str, typer.Option("--rpc-url", envvar="SECUREFLOW_RPC_URL", help="any node's JSON-RPC URL")
    ],
    version: Annotated[
        int | None, typer.Option(min=1, help="the version to check (default: the metadata's)")
    ] = None,
    deployment: PinDeployment = None,
    ledger: PinLedger = None,
    code_hash: PinCodeHash = None,
    registry: PinRegistry = None,
    chain_id: PinChainId = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the checks as JSON")] = False,
) -> None:
    """Check a party's stored model against its metadata and the chain before it is used or exported.

    This party's share files against its salted digest, the metadata's hash against the hash anchored on
    chain for that version, and the model's job lineage; exits 1 naming every failing check.
    """
    from secureflow.ledger.verify import check_lines, pin_from_options

    pin = pin_from_options(
        deployment=deployment, ledger=ledger, code_hash=code_hash, registry=registry, chain_id=chain_id
    )
    verdict = verify_model(data_dir, model_id, version, rpc, pin)
    if json_output:
        print(verdict.model_dump_json(indent=2))
    else:
        console.print(f"[pin ] {verdict.pinned}", markup=False, highlight=False)
        for line in check_lines(verdict.checks):
            console.print(line, markup=False, highlight=False)
        who = f"party {verdict.party}" if verdict.party else f"member {verdict.address}"
        what = f"model {model_id} version {verdict.version} ({who})"
        summary = (
            f"{what}: VALID ({len(verdict.checks)} checks passed)"
            if verdict.ok
            else f"{what}: INVALID, failed: {', '.join(verdict.failed) or 'a check was skipped'}"
        )
        console.print(summary, markup=False, highlight=False)
    if not verdict.ok:
        raise typer.Exit(1)
