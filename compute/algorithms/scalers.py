"""StandardScaler and MinMaxScaler on vertically partitioned data, each column scaled by its owner.

Every column belongs to one party, so the scaler is fitted and applied on that
party's PYU (sklearn's ``StandardScaler`` / ``MinMaxScaler``, run through
SecretFlow ``PYU`` calls). SecretFlow's ``preprocessing.StandardScaler``
would reveal each party's fitted means and variances to every party, and
secretflow-lite has no MinMaxScaler, so both are built from PYU primitives.

Reveals: nothing to anyone; the fitted statistics stay with each column's owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from secureflow.compute.algorithms._common import Column, Params, one_table, same_table_with, selected_columns
from secureflow.compute.registry import algorithm
from secureflow.compute.schema import ObjectInfo
from secureflow.compute.worker.context import StepContext


class StandardScalerParams(Params):
    columns: list[Column] | None = Field(default=None, description="columns to scale (default: all numeric)")
    with_mean: bool = True
    with_std: bool = True


class MinMaxScalerParams(Params):
    columns: list[Column] | None = Field(default=None, description="columns to scale (default: all numeric)")
    feature_min: float = Field(default=0.0, ge=-1e9, le=1e9)
    feature_max: float = Field(default=1.0, ge=-1e9, le=1e9)
    clip: bool = False

    @model_validator(mode="after")
    def _range(self) -> MinMaxScalerParams:
        if not self.feature_min < self.feature_max:
            raise ValueError("feature_min must be smaller than feature_max")
        return self


def _check(params: Any, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]) -> dict[str, ObjectInfo]:
    info = one_table(inputs)
    cols = selected_columns(info, params.columns)
    return {"table": same_table_with(info, {c: "float" for c in cols})}


def _scale(ctx: StepContext, columns: list[str] | None, make: Any) -> None:
    info = ctx.input_infos["table"]
    cols = selected_columns(info, columns)

    def transform(df: Any) -> Any:
        out = df.copy()
        mine = [c for c in cols if c in out.columns]
        if mine:
            out[mine] = make().fit_transform(out[mine].astype(float))
        return out

    ctx.set_table_from_vdf("table", ctx.partition_fn(transform, ctx.vdf("table")))


@algorithm(
    name="standard_scaler",
    summary="Standardise columns to zero mean and unit variance (sklearn semantics, population std)",
    params=StandardScalerParams,
    inputs={"table": "table"},
    outputs={"table": "table"},
    roles={"every party": "fits and scales its own columns"},
    reveals="nothing: means and variances stay with each column's owner",
    check=_check,
)
def standard_scaler(ctx: StepContext, params: StandardScalerParams) -> None:
    from sklearn.preprocessing import StandardScaler

    _scale(ctx, params.columns, lambda: StandardScaler(with_mean=params.with_mean, with_std=params.with_std))


@algorithm(
    name="min_max_scaler",
    summary="Scale columns to [feature_min, feature_max] (sklearn semantics)",
    params=MinMaxScalerParams,
    inputs={"table": "table"},
    outputs={"table": "table"},
    roles={"every party": "fits and scales its own columns"},
    reveals="nothing: minima and maxima stay with each column's owner",
    check=_check,
)
def min_max_scaler(ctx: StepContext, params: MinMaxScalerParams) -> None:
    from sklearn.preprocessing import MinMaxScaler

    _scale(
        ctx,
        params.columns,
        lambda: MinMaxScaler(feature_range=(params.feature_min, params.feature_max), clip=params.clip),
    )
