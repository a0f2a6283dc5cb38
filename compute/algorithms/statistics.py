"""TableStatistics, PearsonCorrelation and VIF.

* ``table_statistics``: SecretFlow's ``stats.table_statistics`` run on each
  party's PYU over its own numeric columns (count, NA count, min, max, mean,
  variance, std, sem, skew, kurtosis, quartiles, moments, sums). Reveals each
  party's column statistics to that party only, unless ``reveal_to`` names
  more receivers. (On a whole VDataFrame SecretFlow would reveal every party's
  statistics to every party.)
* ``pearson_correlation``: columns standardised on their owners' PYUs, then
  ``stats.ss_pearsonr_v.PearsonR`` on the SPU; reveals the correlation matrix
  to every party.
* ``vif``: columns standardised on their owners' PYUs, then
  ``stats.ss_vif_v.VIF`` on the SPU; reveals the VIF of each column to every party.

Pearson and VIF run on the ``precise`` SPU profile (40 fraction bits): with 18
fraction bits VIF silently returned 0.0 for every feature at ~51k rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from secureflow.compute.algorithms._common import (
    Column,
    Params,
    PartyRef,
    check_party,
    one_table,
    selected_columns,
)
from secureflow.compute.registry import algorithm
from secureflow.compute.schema import ObjectInfo
from secureflow.compute.worker.context import StepContext


class TableStatisticsParams(Params):
    columns: list[Column] | None = Field(default=None, description="default: every numeric column")
    reveal_to: list[PartyRef] | None = Field(
        default=None, description="extra receivers of every party's stats"
    )


class CorrelationParams(Params):
    columns: list[Column] | None = Field(
        default=None, min_length=2, description="default: every numeric column"
    )


def check_stats(
    params: TableStatisticsParams, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    info = one_table(inputs)
    cols = selected_columns(info, params.columns)
    owners = sorted(info.locate(cols))
    for r in params.reveal_to or []:
        check_party(r, parties, "reveal_to party")
    receivers = sorted(set(owners) | set(params.reveal_to or []))
    return {"report": ObjectInfo(kind="report", meta={"receivers": receivers, "owners": owners})}


def _stats_dict(df: Any, cols: list[str]) -> dict[str, dict[str, float]]:
    from secretflow.stats import table_statistics

    mine = [c for c in cols if c in df.columns]
    result = table_statistics(df[mine])
    out: dict[str, dict[str, float]] = {}
    for col, row in result.iterrows():
        vals = {}
        for key, value in row.items():
            if key == "datatype":
                continue
            name = str(key).split("(")[0]
            try:
                vals[name] = float(value)
            except (TypeError, ValueError):
                continue
        out[str(col)] = vals
    return out


@algorithm(
    name="table_statistics",
    summary="Per-column statistics (count, NA, min, max, mean, var, std, quartiles, moments, ...)",
    params=TableStatisticsParams,
    inputs={"table": "table"},
    outputs={"report": "report"},
    roles={"every party": "computes the statistics of its own columns"},
    reveals="each party's column statistics to that party, and to reveal_to if given",
    check=check_stats,
)
def table_statistics(ctx: StepContext, params: TableStatisticsParams) -> None:
    info = ctx.input_infos["table"]
    cols = selected_columns(info, params.columns)
    by_party = info.locate(cols)
    vdf = ctx.vdf("table", cols)
    merged: dict[str, Any] | None = None
    for party in ctx.parties:
        if party not in by_party:
            continue
        pyu = ctx.pyu(party)
        stats = pyu(_stats_dict)(vdf.partitions[pyu].data, by_party[party])
        receivers = sorted({party} | set(params.reveal_to or []))
        value = ctx.deliver(stats, receivers)
        if value is not None:
            merged = {**(merged or {}), **value}
    ctx.set_report("report", merged)


def check_corr(
    params: CorrelationParams, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    info = one_table(inputs)
    cols = selected_columns(info, params.columns)
    if len(cols) < 2:
        from secureflow.compute.errors import SchemaError

        raise SchemaError("needs at least two columns")
    return {"report": ObjectInfo(kind="report", meta={"receivers": list(parties)})}


def _standardize(df: Any) -> Any:
    # sample std (ddof=1): PearsonR and VIF divide X^T X by n - 1
    out = df.astype(float)
    std = out.std(ddof=1)
    return (out - out.mean()) / std.where(std > 0, 1.0)


def _standardized_vdf(ctx: StepContext, params: CorrelationParams) -> tuple[Any, list[str]]:
    info = ctx.input_infos["table"]
    cols = selected_columns(info, params.columns)
    ordered = [c for p in ctx.parties for c in info.columns.get(p, {}) if c in cols]
    return ctx.partition_fn(_standardize, ctx.vdf("table", ordered)), ordered


def _clean(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else float(x)


@algorithm(
    name="pearson_correlation",
    summary="Pearson correlation matrix of numeric columns across parties (SPU)",
    params=CorrelationParams,
    inputs={"table": "table"},
    outputs={"report": "report"},
    roles={"every party": "standardises its own columns and feeds them to the SPU"},
    reveals="the correlation matrix to every party",
    reveals_to_all=True,
    spu="precise",
    check=check_corr,
)
def pearson(ctx: StepContext, params: CorrelationParams) -> None:
    from secretflow.stats.ss_pearsonr_v import PearsonR

    vdf, cols = _standardized_vdf(ctx, params)
    matrix = PearsonR(ctx.spu).pearsonr(vdf, standardize=False)
    ctx.set_report(
        "report", {"columns": cols, "matrix": [[_clean(float(v)) for v in row] for row in matrix.tolist()]}
    )


@algorithm(
    name="vif",
    summary="Variance inflation factor of each numeric column across parties (SPU)",
    params=CorrelationParams,
    inputs={"table": "table"},
    outputs={"report": "report"},
    roles={"every party": "standardises its own columns and feeds them to the SPU"},
    reveals="the VIF of each column to every party",
    reveals_to_all=True,
    spu="precise",
    check=check_corr,
)
def vif(ctx: StepContext, params: CorrelationParams) -> None:
    from secretflow.stats.ss_vif_v import VIF

    vdf, cols = _standardized_vdf(ctx, params)
    values = VIF(ctx.spu).vif(vdf, standardize=False)
    ctx.set_report("report", {"columns": cols, "vif": [_clean(float(v)) for v in list(values)]})
