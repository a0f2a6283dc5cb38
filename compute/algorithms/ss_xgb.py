"""SS-XGBoost: secret-shared vertical XGBoost (SecretFlow `ml.boost.ss_xgb_v.Xgb`, SPU).

Gradients, statistics and leaf weights are computed on the SPU; each party
keeps the split decisions on its own features (its "split tree" part, a
plaintext object on its PYU, never sent). Saving writes, in each party's model
directory, its SPU shares of the leaf weights (``spu.dump``, one file per tree)
and a pickle of its own split-tree parts; loading restores both (SPMD).
Predict with ``secure_predict``.

Reveals: to each party, which of its own samples go left or right at the splits
on its own features (inherent to SS-XGB's vertical split trees); nothing about
other parties' features, the label, gradients or weights.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from secureflow.compute.algorithms._common import Column, Params, one_table
from secureflow.compute.algorithms.ss_lr import features_of, ordered
from secureflow.compute.registry import algorithm, model_files, model_loader
from secureflow.compute.schema import ObjectInfo
from secureflow.compute.worker.context import ModelHandle, StepContext


class SsXgbParams(Params):
    label: Column
    features: list[Column] | None = Field(
        default=None, description="default: every numeric column but the label"
    )
    objective: Literal["logistic", "linear"] = "logistic"
    num_boost_round: int = Field(default=5, ge=1, le=200)
    max_depth: int = Field(default=4, ge=1, le=16)
    learning_rate: float = Field(default=0.3, gt=0, le=1)
    reg_lambda: float = Field(default=0.1, ge=0, le=10_000)
    subsample: float = Field(default=1.0, gt=0, le=1)
    colsample_by_tree: float = Field(default=1.0, gt=0, le=1)
    sketch_eps: float = Field(default=0.1, gt=0, le=1)
    base_score: float = Field(default=0.0, ge=-1e6, le=1e6)
    seed: int = Field(default=42, ge=0, le=2**31 - 1)


def check(
    params: SsXgbParams, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    info = one_table(inputs)
    label_party = next(iter(info.locate([params.label], what="label")))
    info.require_numeric([params.label])
    feats = features_of(params, info)  # type: ignore[arg-type]
    meta = {
        "algorithm": "ss_xgb",
        "label": params.label,
        "label_party": label_party,
        "task": "classification" if params.objective == "logistic" else "regression",
        "objective": params.objective,
        "base": params.base_score,
        "tree_num": params.num_boost_round,
    }
    cols = {p: c for p, c in ordered(info, feats, parties).items() if c}
    return {"model": ObjectInfo(kind="model", columns=cols, meta=meta)}  # type: ignore[arg-type]


def _paths(model_dir: Path, parties: tuple[str, ...], tree: int) -> list[str]:
    return [str(model_dir / f"share-{p}-w{tree}.bin") for p in parties]


@model_files("ss_xgb")
def own_files(model_dir: Path, meta: dict[str, Any], party: str) -> list[Path]:
    """This party's weight shares, one per tree, and its split-tree pickles if it holds features."""
    files: list[Path] = []
    for i in range(int(meta["info_meta"]["tree_num"])):
        files.append(Path(_paths(model_dir, (party,), i)[0]))
        if meta["features"].get(party):
            files.append(model_dir / f"tree-{party}-{i}.pkl")
    return files


def _dump_tree(tree: Any, path: str) -> str:
    with open(path, "wb") as fh:
        pickle.dump(tree, fh)
    return path


def _load_tree(path: str) -> Any:
    with open(path, "rb") as fh:
        return pickle.load(fh)  # noqa: S301 - this party's own model share, written by this worker into its model folder


@algorithm(
    name="ss_xgb",
    summary="Train secret-shared vertical XGBoost (binary logistic or linear regression)",
    params=SsXgbParams,
    inputs={"table": "table"},
    outputs={"model": "model"},
    roles={"label party": "holds the label", "every party": "holds features, its split decisions and shares"},
    reveals="each party learns only the split partition of its own features; weights stay secret-shared",
    spu="default",
    check=check,
)
def run(ctx: StepContext, params: SsXgbParams) -> None:
    from secretflow.ml.boost.ss_xgb_v import Xgb

    info = ctx.output_infos["model"]
    feats = [c for p in ctx.parties for c in info.columns.get(p, {})]
    x = ctx.vdf("table", feats)
    y = ctx.vdf("table", [params.label])
    xgb_params = {
        "num_boost_round": params.num_boost_round,
        "max_depth": params.max_depth,
        "learning_rate": params.learning_rate,
        "objective": params.objective,
        "reg_lambda": params.reg_lambda,
        "subsample": params.subsample,
        "colsample_by_tree": params.colsample_by_tree,
        "sketch_eps": params.sketch_eps,
        "base_score": params.base_score,
        "seed": params.seed,
    }
    model = Xgb(ctx.spu).train(xgb_params, x, y)
    model_dir = ctx.model_dir("model")
    files = _save(ctx, model, model_dir)
    ctx.set_model("model", ModelHandle(info=info, obj=model, model_dir=model_dir, files=files))


def _save(ctx: StepContext, model: Any, model_dir: Path) -> list[Path]:
    me = ctx.self_party
    idx = ctx.parties.index(me)
    files: list[Path] = []
    for i, weight in enumerate(model.weights):
        paths = _paths(model_dir, ctx.parties, i)
        ctx.spu.dump(weight, paths)
        files.append(Path(paths[idx]))
    for i, tree in enumerate(model.trees):
        for pyu, part in tree.items():
            path = str(model_dir / f"tree-{pyu.party}-{i}.pkl")
            done = pyu(_dump_tree)(part, path)
            if pyu.party == me:
                ctx.local(done)
                files.append(Path(path))
    return files


@model_loader("ss_xgb")
def load(ctx: StepContext, model_dir: Path, meta: dict[str, Any]) -> ModelHandle:
    from secretflow.ml.boost.ss_xgb_v.core.node_split import RegType
    from secretflow.ml.boost.ss_xgb_v.model import XgbModel

    info_meta = meta["info_meta"]
    tree_parties = [p for p in ctx.parties if meta["features"].get(p)]
    model = XgbModel(ctx.spu, RegType(info_meta["objective"]), info_meta["base"])
    files: list[Path] = []
    idx = ctx.parties.index(ctx.self_party)
    model.weights = []
    model.trees = []
    for i in range(int(info_meta["tree_num"])):
        paths = _paths(model_dir, ctx.parties, i)
        model.weights.append(ctx.spu.load(paths))
        files.append(Path(paths[idx]))
        tree = {}
        for party in tree_parties:
            path = str(model_dir / f"tree-{party}-{i}.pkl")
            tree[ctx.pyu(party)] = ctx.pyu(party)(_load_tree)(path)
            if party == ctx.self_party:
                files.append(Path(path))
        model.trees.append(tree)
    info = ObjectInfo(kind="model", columns=meta["features"], meta=info_meta)
    return ModelHandle(info=info, obj=model, model_dir=model_dir, files=files)
