"""LabelEncoder and OneHotEncoder on vertically partitioned data (each column encoded by its owner).

* ``label_encoder``: SecretFlow's ``preprocessing.encoder.VOrdinalEncoder`` (the
  fitted encoders stay on each owner's PYU): categories become 0..k-1 in sorted
  order, as sklearn's ``OrdinalEncoder``.
* ``one_hot_encoder``: sklearn's ``OneHotEncoder(max_categories=K)`` fitted on the
  owner's PYU; each input column becomes exactly K columns ``<col>_0 .. <col>_{K-1}``
  (category i in sorted order; with more than K categories the rarest share the
  last column, as sklearn's infrequent category; unused columns are 0). SecretFlow's
  ``OneHotEncoder`` reveals every party's categories to every party, and its output
  column names would carry category values, so it is not used.

Reveals: nothing to other parties. The category -> code mapping stays with the
owner (saved only if the step saves its ``mapping`` report, in the owner's data dir).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from secureflow.compute.algorithms._common import Column, Params, one_table, selected_columns
from secureflow.compute.registry import algorithm
from secureflow.compute.schema import ObjectInfo
from secureflow.compute.worker.context import StepContext


class LabelEncoderParams(Params):
    columns: list[Column] = Field(min_length=1, max_length=1000)


class OneHotParams(Params):
    columns: list[Column] = Field(min_length=1, max_length=1000)
    max_categories: int = Field(default=8, ge=2, le=256)


def _mapping_info(info: ObjectInfo, cols: list[str]) -> ObjectInfo:
    owners = sorted(info.locate(cols))
    return ObjectInfo(kind="report", meta={"receivers": owners, "private": True})


def check_label(
    params: LabelEncoderParams, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    info = one_table(inputs)
    cols = selected_columns(info, params.columns, numeric=False)
    out = {p: {c: ("float" if c in cols else k) for c, k in pc.items()} for p, pc in info.columns.items()}
    return {
        "table": ObjectInfo(kind="table", columns=out, meta=dict(info.meta)),
        "mapping": _mapping_info(info, cols),
    }


@algorithm(
    name="label_encoder",
    summary="Encode categorical columns as 0..k-1 (sorted categories), per column owner",
    params=LabelEncoderParams,
    inputs={"table": "table"},
    outputs={"table": "table", "mapping": "report"},
    roles={"every party": "encodes its own columns and keeps the mapping"},
    reveals="nothing to other parties; the mapping stays with each column's owner",
    check=check_label,
)
def label_encoder(ctx: StepContext, params: LabelEncoderParams) -> None:
    from secretflow.preprocessing.encoder import VOrdinalEncoder

    info = ctx.input_infos["table"]
    cols = selected_columns(info, params.columns, numeric=False)
    encoder = VOrdinalEncoder()
    encoded = encoder.fit_transform(ctx.vdf("table", cols))
    own = ctx.own_df("table")
    mine = [c for c in cols if info.party_of(c) == ctx.self_party]
    mapping = None
    if own is not None:
        out = own.copy()
        if mine:
            enc = ctx.own_partition_df(encoded)
            assert enc is not None  # noqa: S101 - invariant for the type checker, not input validation
            for col in mine:
                out[col] = enc[col].to_numpy(dtype=float)
            fitted = ctx.local(encoder._encoders[ctx.pyu(ctx.self_party)])
            mapping = {
                c: [str(v) for v in cats]
                for c, cats in zip(fitted.feature_names_in_, fitted.categories_, strict=True)
            }
        ctx.set_table("table", out)
    else:
        ctx.set_table("table", None)
    ctx.set_report("mapping", mapping)


def check_onehot(
    params: OneHotParams, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    info = one_table(inputs)
    cols = selected_columns(info, params.columns, numeric=False)
    out: dict[str, dict[str, str]] = {}
    for p, pc in info.columns.items():
        new: dict[str, str] = {}
        for c, k in pc.items():
            if c in cols:
                for i in range(params.max_categories):
                    new[f"{c}_{i}"] = "float"
            else:
                new[c] = k
        out[p] = new
    names = [c for pc in out.values() for c in pc]
    if len(set(names)) != len(names):
        from secureflow.compute.errors import SchemaError

        raise SchemaError("one-hot output column names clash with existing columns")
    return {
        "table": ObjectInfo(kind="table", columns=out, meta=dict(info.meta)),  # type: ignore[arg-type]
        "mapping": _mapping_info(info, cols),
    }


def one_hot_frame(df: Any, cols: list[str], k: int) -> Any:
    """Replace each of ``cols`` present in ``df`` by exactly ``k`` indicator columns."""
    import numpy as np
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder

    parts = []
    for c in df.columns:
        if c not in cols:
            parts.append(df[[c]])
            continue
        enc = OneHotEncoder(max_categories=k, handle_unknown="infrequent_if_exist", sparse_output=False)
        values = enc.fit_transform(df[[c]].astype(str))
        padded = np.zeros((len(df), k))
        padded[:, : values.shape[1]] = values
        parts.append(pd.DataFrame(padded, columns=[f"{c}_{i}" for i in range(k)], index=df.index))
    return pd.concat(parts, axis=1)


@algorithm(
    name="one_hot_encoder",
    summary="One-hot encode categorical columns into exactly max_categories columns each, per owner",
    params=OneHotParams,
    inputs={"table": "table"},
    outputs={"table": "table", "mapping": "report"},
    roles={"every party": "encodes its own columns and keeps the mapping"},
    reveals="nothing to other parties; the categories stay with each column's owner",
    check=check_onehot,
)
def one_hot_encoder(ctx: StepContext, params: OneHotParams) -> None:
    info = ctx.input_infos["table"]
    cols = selected_columns(info, params.columns, numeric=False)
    k = params.max_categories
    vdf = ctx.vdf("table")
    ctx.set_table_from_vdf("table", ctx.partition_fn(lambda df: one_hot_frame(df, cols, k), vdf))
    own = ctx.own_df("table")
    mapping = None
    mine = [c for c in cols if info.party_of(c) == ctx.self_party]
    if own is not None and mine:
        mapping = {c: sorted(str(v) for v in own[c].dropna().astype(str).unique()) for c in mine}
    ctx.set_report("mapping", mapping)
