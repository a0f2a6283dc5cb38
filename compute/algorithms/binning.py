"""EqualWidthBinning and QuantileBinning (SecretFlow ``VertBinning`` + ``VertBinSubstitution``).

Each party bins its own numeric columns on its PYU (``pd.cut`` for equal width,
``pd.qcut`` for quantiles, empty bins dropped; a missing value gets bin -1) and
replaces the values by the bin index. The split points stay on the owner's PYU;
each owner receives the rules of its own columns as its ``rules`` report.

Reveals: nothing to other parties.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from secureflow.compute.algorithms._common import Column, Params, one_table, same_table_with, selected_columns
from secureflow.compute.registry import algorithm
from secureflow.compute.schema import ObjectInfo
from secureflow.compute.worker.context import StepContext


class BinningParams(Params):
    columns: list[Column] | None = Field(default=None, description="columns to bin (default: all numeric)")
    bin_num: int = Field(default=10, ge=2, le=1000)


def check(
    params: BinningParams, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    info = one_table(inputs)
    cols = selected_columns(info, params.columns)
    owners = sorted(info.locate(cols))
    return {
        "table": same_table_with(info, {c: "float" for c in cols}),
        "rules": ObjectInfo(kind="report", meta={"receivers": owners, "private": True}),
    }


def _to_arrow(df: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(df, preserve_index=False)


def _to_pandas(table: Any) -> Any:
    return table.to_pandas()


def _rules_report(rules: Any) -> dict[str, Any]:
    return {
        v["name"]: {
            "split_points": [float(x) for x in v["split_points"]],
            "filling_values": [float(x) for x in v["filling_values"]],
            "else_filling_value": float(v["else_filling_value"]),
        }
        for v in rules["variables"]
    }


def _run(ctx: StepContext, params: BinningParams, method: str) -> None:
    from secretflow.component.core import CompVDataFrame
    from secretflow.component.core.dataframe import CompPartition
    from secretflow.preprocessing.binning.vert_bin_substitution import VertBinSubstitution
    from secretflow.preprocessing.binning.vert_binning import VertBinning

    info = ctx.input_infos["table"]
    cols = selected_columns(info, params.columns)
    by_party = info.locate(cols)
    vdf = ctx.vdf("table")
    comp = CompVDataFrame(
        {pyu: CompPartition(pyu(_to_arrow)(part.data)) for pyu, part in vdf.partitions.items()}
    )
    bin_names = {ctx.pyu(p): c for p, c in by_party.items()}
    rules = VertBinning().binning(comp, method, params.bin_num, bin_names)
    binned = VertBinSubstitution().substitution(comp, rules)
    me = ctx.pyu(ctx.self_party)
    own = ctx.own_df("table")
    report = None
    if own is None:
        ctx.set_table("table", None)
    else:
        out = own.copy()
        if me in binned.partitions:
            new = ctx.local(me(_to_pandas)(binned.data(me)))
            for col in by_party.get(ctx.self_party, []):
                out[col] = new[col].to_numpy(dtype=float)
        ctx.set_table("table", out)
        if me in rules:
            report = _rules_report(ctx.local(rules[me]))
    ctx.set_report("rules", report)


@algorithm(
    name="equal_width_binning",
    summary="Replace numeric columns by equal-width bin indices (pd.cut semantics; missing -> -1)",
    params=BinningParams,
    inputs={"table": "table"},
    outputs={"table": "table", "rules": "report"},
    roles={"every party": "bins its own columns and keeps the split points"},
    reveals="nothing to other parties; split points stay with each column's owner",
    check=check,
)
def equal_width(ctx: StepContext, params: BinningParams) -> None:
    _run(ctx, params, "eq_range")


@algorithm(
    name="quantile_binning",
    summary="Replace numeric columns by equal-frequency bin indices (pd.qcut semantics; missing -> -1)",
    params=BinningParams,
    inputs={"table": "table"},
    outputs={"table": "table", "rules": "report"},
    roles={"every party": "bins its own columns and keeps the split points"},
    reveals="nothing to other parties; split points stay with each column's owner",
    check=check,
)
def quantile(ctx: StepContext, params: BinningParams) -> None:
    _run(ctx, params, "quantile")
