"""Model persistence: per-party SPU share files plus a metadata JSON, and the model loaders.

Layout in each party's own directory::

    <party_dir>/models/<model_id>/share-*.bin    this party's shares (and its own plaintext tree parts
                                                 for SS-XGBoost: split features/thresholds it owns)
    <party_dir>/models/<model_id>/meta.json      algorithm, parameters, feature names per party, label
                                                 party, SPU runtime config, version, per-party share
                                                 digests (salted), lineage (job id, step), model hash

The model hash is keccak256 of the RFC 8785 JSON of the metadata without the
``model_hash`` field; it is what the ledger anchors (``record_model``). Loading
refuses an SPU runtime config different from the one the model was trained
with: SecretFlow would load the shares silently and predict garbage.

Integrity before use (`verify_own_shares`, `check_anchored`): before a model is
loaded, each party re-hashes its own share files (the files its algorithm
registers with `secureflow.compute.registry.model_files`) and compares the salted
digest with its entry in ``share_digests`` (salted with that party's salt for the job
that trained the model, derived again from the party's secret and the lineage job id,
`secureflow.ledger.signing.job_salt`; neither leaves the party), and
the metadata's hash must be the ``modelHash`` anchored on chain for the model's
job, id and version (the coordinator reads it through
`secureflow.ledger.recorder.ModelAnchors`). A model that is not anchored is
refused, not trusted. Errors name the model, version and the check; never share
contents or digests of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secureflow.compute.errors import ModelError, ModelIntegrityError, ModelNotAnchoredError
from secureflow.ledger.records import canonical_hash
from secureflow.ledger.signing import salted_digest

if TYPE_CHECKING:
    from collections.abc import Sequence

MODEL_META = "meta.json"


def model_id_for(job_id: str, seq: int, output_name: str) -> str:
    return f"{output_name}-{job_id[2:14]}-{seq}"


def model_hash(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "model_hash"}
    return canonical_hash(body)


def read_meta(model_dir: Path) -> dict[str, Any]:
    path = model_dir / MODEL_META
    if not path.is_file():
        raise ModelError(f"model {model_dir.name!r} has no metadata in this party's model directory")
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta


def write_meta(model_dir: Path, meta: dict[str, Any]) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / (MODEL_META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    tmp.replace(model_dir / MODEL_META)


def check_runtime_config(meta: dict[str, Any], runtime_config: dict[str, Any]) -> None:
    """Refuse to load shares under an SPU runtime config other than the training one."""
    trained = meta.get("spu_runtime_config") or {}
    for key in ("protocol", "field", "fxp_fraction_bits"):
        if str(trained.get(key)) != str(runtime_config.get(key)):
            raise ModelError(
                f"model {meta.get('model_id')!r} was trained with SPU {key}={trained.get(key)!r} "
                f"but the engine's SPU has {runtime_config.get(key)!r}",
                hint="load it on an SPU with the runtime config stored in the model's meta.json",
            )


def list_models(models_dir: Path) -> list[dict[str, Any]]:
    """Metadata of every model in one party's model directory, with lineage (job id, step)."""
    out = []
    if models_dir.is_dir():
        for child in sorted(models_dir.iterdir()):
            if (child / MODEL_META).is_file():
                out.append(read_meta(child))
    return out


def files_digest(files: Sequence[Path]) -> bytes:
    """The content digest of a party's model part: keccak of its files' keccaks, in path order.

    The same rule as the worker's digest of a trained model's output (`content_digest` of a ModelHandle).
    """
    from eth_utils.crypto import keccak

    return bytes(keccak(b"".join(bytes(keccak(f.read_bytes())) for f in sorted(files))))


def describe(meta: dict[str, Any]) -> str:
    """``model 'ID' version N`` for messages."""
    return f"model {meta.get('model_id')!r} version {meta.get('version')}"


def anchor_key(meta: dict[str, Any]) -> tuple[str, str, int]:
    """(job id, model id, version) under which the AuditLedger holds the model's hash."""
    lineage = meta.get("lineage") or {}
    job_id, model_id, version = lineage.get("job_id"), meta.get("model_id"), meta.get("version")
    if not isinstance(job_id, str) or not isinstance(model_id, str) or not isinstance(version, int):
        raise ModelIntegrityError(f"{describe(meta)}: its metadata names no job, model id or version")
    return job_id, model_id, version


def check_meta_hash(meta: dict[str, Any]) -> None:
    """The metadata's ``model_hash`` field is the hash of the rest of it."""
    if meta.get("model_hash") != model_hash(meta):
        raise ModelIntegrityError(
            f"{describe(meta)}: the metadata does not match its model hash (meta.json was edited)"
        )


def check_anchored(meta: dict[str, Any], anchored: str | None) -> None:
    """The metadata's hash is the hash anchored on chain for its job, model id and version."""
    job_id, _model_id, _version = anchor_key(meta)
    if anchored is None:
        raise ModelNotAnchoredError(
            f"{describe(meta)} is not anchored on chain (job {job_id} recorded no hash for this version): "
            "refusing to trust its files"
        )
    if str(meta.get("model_hash", "")).lower() != anchored.lower():
        raise ModelIntegrityError(
            f"{describe(meta)}: the metadata hash {meta.get('model_hash')} differs from the hash {anchored} "
            f"anchored on chain by job {job_id} for this version (meta.json was changed after anchoring)"
        )


def verify_own_shares(model_dir: Path, meta: dict[str, Any], *, party: str, address: str, salt: bytes) -> str:
    """Re-hash ``party``'s own share files against its salted digest in ``share_digests``.

    ``salt`` is the party's salt for the job in the model's lineage (``job_salt(secret, lineage job id)``).

    Returns a short description of what was checked; raises `ModelIntegrityError` naming the model, version
    and party (and the file names, never their contents) when a file is missing or the digest differs.
    """
    from secureflow.compute.registry import get_model_files

    recorded = {str(a).lower(): d for a, d in (meta.get("share_digests") or {}).items()}
    expected = recorded.get(address.lower())
    if not isinstance(expected, str):
        raise ModelIntegrityError(
            f"{describe(meta)}: its metadata records no share digest for party {party!r} ({address})"
        )
    files = get_model_files(str(meta.get("algorithm")))(model_dir, meta, party)
    names = ", ".join(f.name for f in files)
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ModelIntegrityError(
            f"{describe(meta)}: party {party!r}'s share file(s) {', '.join(missing)} are missing"
        )
    if salted_digest(salt, files_digest(files)) != expected.lower():
        raise ModelIntegrityError(
            f"{describe(meta)}: party {party!r}'s share files ({names}) do not hash to the share digest "
            "recorded in its metadata (a share file was changed or replaced)"
        )
    return f"party {party!r}: {len(files)} share file(s) ({names}) match the salted digest in the metadata"
