"""SS-LR: secret-shared logistic/linear regression (SecretFlow `ml.linear.ss_sgd.SSRegression`, SPU).

Features may come from both parties, the label from one. Training runs on the
SPU (SEMI2K, FM128, 18 fraction bits): the weights exist only as secret shares.
Each party writes its own share file (``spu.dump``) into its model directory;
the metadata (including the SPU runtime config and the model enums) is written
by the engine (see `secureflow.compute.models`). Predict with ``secure_predict``.

Reveals: nothing during training (no loss, no weights); the model exists only as shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from secureflow.compute.algorithms._common import Column, Params, one_table, selected_columns
from secureflow.compute.errors import SchemaError
from secureflow.compute.registry import algorithm, model_files, model_loader
from secureflow.compute.schema import ObjectInfo
from secureflow.compute.worker.context import ModelHandle, StepContext


class SsLrParams(Params):
    label: Column
    features: list[Column] | None = Field(
        default=None, description="default: every numeric column but the label"
    )
    reg_type: Literal["logistic", "linear"] = "logistic"
    epochs: int = Field(default=5, ge=1, le=200)
    learning_rate: float = Field(default=0.1, gt=0, le=10)
    batch_size: int = Field(default=1024, ge=1, le=1_000_000)
    sig_type: Literal["t1", "t3", "t5", "sr", "df", "real"] = "t1"
    penalty: Literal["None", "l2"] = "None"
    l2_norm: float = Field(default=0.5, ge=0, le=1e6)
    eps: float = Field(default=1e-3, ge=0, le=1)


def features_of(params: SsLrParams, info: ObjectInfo) -> list[str]:
    if params.features is None:
        cols = [c for c in selected_columns(info, None) if c != params.label]
    else:
        if params.label in params.features:
            raise SchemaError("the label cannot also be a feature")
        cols = selected_columns(info, params.features)
    if not cols:
        raise SchemaError("no feature column")
    return cols


def ordered(info: ObjectInfo, columns: list[str], parties: tuple[str, ...]) -> dict[str, dict[str, str]]:
    by_party = info.locate(columns)
    return {p: {c: info.columns[p][c] for c in info.columns[p] if c in by_party.get(p, [])} for p in parties}


def check(
    params: SsLrParams, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    info = one_table(inputs)
    label_party = next(iter(info.locate([params.label], what="label")))
    info.require_numeric([params.label])
    feats = features_of(params, info)
    meta = {
        "algorithm": "ss_lr",
        "label": params.label,
        "label_party": label_party,
        "task": "classification" if params.reg_type == "logistic" else "regression",
        "reg_type": params.reg_type,
        "sig_type": params.sig_type,
    }
    cols = {p: c for p, c in ordered(info, feats, parties).items() if c}
    return {"model": ObjectInfo(kind="model", columns=cols, meta=meta)}  # type: ignore[arg-type]


def share_paths(model_dir: Path, parties: tuple[str, ...]) -> list[str]:
    return [str(model_dir / f"share-{p}.bin") for p in parties]


@model_files("ss_lr")
def own_files(model_dir: Path, meta: dict[str, Any], party: str) -> list[Path]:
    """This party's share of the weights (what its share digest was taken of)."""
    return [Path(share_paths(model_dir, (party,))[0])]


@algorithm(
    name="ss_lr",
    summary="Train a secret-shared logistic or linear regression on vertically partitioned features",
    params=SsLrParams,
    inputs={"table": "table"},
    outputs={"model": "model"},
    roles={"label party": "holds the label column", "every party": "holds some features and a weight share"},
    reveals="nothing: the weights exist only as SPU shares, one share file per party",
    spu="default",
    check=check,
)
def run(ctx: StepContext, params: SsLrParams) -> None:
    from secretflow.ml.linear import SSRegression

    info = ctx.output_infos["model"]
    feats = [c for p in ctx.parties for c in info.columns.get(p, {})]
    x = ctx.vdf("table", feats)
    y = ctx.vdf("table", [params.label])
    model = SSRegression(ctx.spu)
    model.fit(
        x,
        y,
        epochs=params.epochs,
        learning_rate=params.learning_rate,
        batch_size=params.batch_size,
        sig_type=params.sig_type,
        reg_type=params.reg_type,
        penalty=params.penalty,
        l2_norm=params.l2_norm,
        eps=params.eps,
    )
    model_dir = ctx.model_dir("model")
    paths = share_paths(model_dir, ctx.parties)
    ctx.spu.dump(model.spu_w, paths)
    own = Path(paths[ctx.parties.index(ctx.self_party)])
    ctx.set_model("model", ModelHandle(info=info, obj=model, model_dir=model_dir, files=[own]))


@model_loader("ss_lr")
def load(ctx: StepContext, model_dir: Path, meta: dict[str, Any]) -> ModelHandle:
    from secretflow.ml.linear import LinearModel, RegType, SSRegression
    from secretflow.utils.sigmoid import SigType

    paths = share_paths(model_dir, ctx.parties)
    weights = ctx.spu.load(paths)
    model = SSRegression(ctx.spu)
    info_meta = meta["info_meta"]
    model.load_model(LinearModel(weights, RegType(info_meta["reg_type"]), SigType(info_meta["sig_type"])))
    info = ObjectInfo(kind="model", columns=meta["features"], meta=info_meta)
    own = Path(paths[ctx.parties.index(ctx.self_party)])
    return ModelHandle(info=info, obj=model, model_dir=model_dir, files=[own])
