"""Secure prediction with a trained SS-LR or SS-XGBoost model; the scores go to one named receiver.

The model's features are read from the input table (each party its own
columns, in the order the model was trained with); the prediction is computed
on the SPU (SS-LR) or jointly (SS-XGBoost) and revealed only to the receiver
(``predict(..., to_pyu=receiver)``): the output table holds one column at the
receiver and nothing at the other parties.

Reveals: the prediction scores to the receiver only.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from secureflow.compute.algorithms._common import Column, Params, PartyRef, check_party, one_table
from secureflow.compute.errors import SchemaError
from secureflow.compute.registry import algorithm
from secureflow.compute.schema import ObjectInfo
from secureflow.compute.worker.context import StepContext


class PredictParams(Params):
    receiver: PartyRef = Field(description="the only party that receives the scores")
    score_column: Column = "pred"
    batch_size: int = Field(default=1024, ge=1, le=1_000_000)


def check(
    params: PredictParams, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    table = one_table(inputs)
    model = inputs["model"]
    check_party(params.receiver, parties, "receiver")
    for party, cols in model.columns.items():
        for col in cols:
            if table.party_of(col) != party:
                raise SchemaError(f"model feature {col!r} is not in party {party!r}'s table")
    table.require_numeric([c for cols in model.columns.values() for c in cols])
    out = {p: ({params.score_column: "float"} if p == params.receiver else {}) for p in parties}
    return {"table": ObjectInfo(kind="table", columns=out)}  # type: ignore[arg-type]


@algorithm(
    name="secure_predict",
    summary="Predict with an SS-LR or SS-XGBoost model; only the receiver gets the scores",
    params=PredictParams,
    inputs={"table": "table", "model": "model"},
    outputs={"table": "table"},
    roles={"every party": "feeds its feature columns", "receiver": "receives the scores"},
    reveals="the prediction scores to the receiver only",
    spu="default",
    check=check,
)
def run(ctx: StepContext, params: PredictParams) -> None:
    import numpy as np
    import pandas as pd

    handle = ctx.model("model")
    feats = [c for p in ctx.parties for c in handle.info.columns.get(p, {})]
    x = ctx.vdf("table", feats)
    receiver = ctx.pyu(params.receiver)
    algo = handle.info.meta["algorithm"]
    if algo == "ss_lr":
        pred = handle.obj.predict(x, batch_size=params.batch_size, to_pyu=receiver)
    else:
        pred = handle.obj.predict(x, to_pyu=receiver)
    scores = pred.partitions[receiver]
    if ctx.self_party == params.receiver:
        values = np.asarray(ctx.local(scores), dtype=float).reshape(-1)
        ctx.set_table("table", pd.DataFrame({params.score_column: values}))
    else:
        ctx.set_table("table", None)
