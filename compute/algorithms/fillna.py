"""Fillna: fill missing values of each column on the party that owns it (PYU-local).

In vertically partitioned data every column belongs to one party, so the fill
value (mean / median / most frequent / constant) is computed and applied on
that party's PYU; SecretFlow's ``VDataFrame.fillna`` would need the value in
the driver, i.e. revealed to every party, so it is not used for statistics.

Reveals: nothing to anyone (the output columns stay with their owners).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from secureflow.compute.algorithms._common import Column, Params, one_table, same_table_with, selected_columns
from secureflow.compute.errors import SchemaError
from secureflow.compute.registry import algorithm
from secureflow.compute.schema import ObjectInfo
from secureflow.compute.worker.context import StepContext


class FillnaParams(Params):
    columns: list[Column] | None = Field(default=None, description="columns to fill (default: all numeric)")
    strategy: Literal["mean", "median", "most_frequent", "constant"] = "mean"
    fill_value: float | str | None = Field(default=None, description="the value for strategy=constant")

    @model_validator(mode="after")
    def _constant(self) -> FillnaParams:
        if (self.strategy == "constant") != (self.fill_value is not None):
            raise ValueError("fill_value is required for strategy=constant and only then")
        return self


def check(
    params: FillnaParams, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    info = one_table(inputs)
    numeric = params.strategy in ("mean", "median") or isinstance(params.fill_value, float)
    cols = selected_columns(info, params.columns, numeric=numeric)
    if params.strategy == "constant" and isinstance(params.fill_value, str):
        bad = [c for c in cols if info.kind_of(c) != "str"]
        if bad:
            raise SchemaError(f"a text fill_value needs text columns: {', '.join(bad)}")
    changed = {c: "float" for c in cols if info.kind_of(c) in ("int", "bool") and numeric}
    return {"table": same_table_with(info, changed)}


def fill_frame(df: object, columns: list[str], strategy: str, fill_value: object) -> object:
    import pandas as pd

    assert isinstance(df, pd.DataFrame)  # noqa: S101 - invariant for the type checker, not input validation
    out = df.copy()
    for col in columns:
        if col not in out.columns:
            continue
        series = out[col]
        if strategy == "mean":
            value = series.mean()
        elif strategy == "median":
            value = series.median()
        elif strategy == "most_frequent":
            modes = series.mode(dropna=True)
            value = modes.iloc[0] if len(modes) else None
        else:
            value = fill_value
        if value is not None and not (isinstance(value, float) and value != value):
            out[col] = series.fillna(value)
        if strategy in ("mean", "median") and out[col].dtype.kind in "ib":
            out[col] = out[col].astype(float)
    return out


@algorithm(
    name="fillna",
    summary="Fill missing values per column (mean, median, most frequent or a constant)",
    params=FillnaParams,
    inputs={"table": "table"},
    outputs={"table": "table"},
    roles={"every party": "fills its own columns"},
    reveals="nothing: fill values are computed and applied by each column's owner",
    check=check,
)
def run(ctx: StepContext, params: FillnaParams) -> None:
    info = ctx.input_infos["table"]
    numeric = params.strategy in ("mean", "median") or isinstance(params.fill_value, float)
    cols = selected_columns(info, params.columns, numeric=numeric)
    vdf = ctx.vdf("table")

    def fill(df: object) -> object:
        return fill_frame(df, cols, params.strategy, params.fill_value)

    ctx.set_table_from_vdf("table", ctx.partition_fn(fill, vdf))
