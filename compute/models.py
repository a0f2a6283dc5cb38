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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secureflow.compute.errors import ModelError
from secureflow.ledger.records import canonical_hash

if TYPE_CHECKING:
    pass

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
