"""PSI: private set intersection of two parties' tables on a key column (SecretFlow `SPU.psi`, RR22).

Semantics: each party first drops its rows whose key is missing and keeps the
first row of each duplicated key (locally; nothing is sent), then the parties
run RR22 PSI on the key column only (``spu.psi`` on files in the party's
private temp dir, removed after the step). The output table holds, for each
key in the intersection (sorted as SecretFlow aligns them), each party's row;
the key column is kept only by the ``receiver`` (default: the first party).

Reveals: the intersection's keys, and so its size, to both parties (both keep
aligned rows). Nothing else: non-key columns never leave their owner.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from secureflow.compute.algorithms._common import Column, Params, PartyRef, check_party, one_table
from secureflow.compute.errors import EmptyResultError, ParameterError, SchemaError
from secureflow.compute.registry import algorithm
from secureflow.compute.schema import ColumnKind, ObjectInfo
from secureflow.compute.worker.context import StepContext


class PsiParams(Params):
    key: Column | dict[PartyRef, Column] = Field(description="key column (one name, or per party)")
    receiver: PartyRef | None = Field(default=None, description="the party that keeps the key column")
    protocol: (
        Literal[
            "PROTOCOL_RR22",
            "PROTOCOL_ECDH",
            "PROTOCOL_KKRT",
            "PROTOCOL_ECDH_3PC",
            "PROTOCOL_ECDH_NPC",
            "PROTOCOL_KKRT_NPC",
        ]
        | None
    ) = Field(
        default=None,
        description="two parties: RR22 (default), ECDH or KKRT; three: ECDH_3PC; any number above two: "
        "ECDH_NPC (default) or KKRT_NPC",
    )


TWO_PARTY_PROTOCOLS = ("PROTOCOL_RR22", "PROTOCOL_ECDH", "PROTOCOL_KKRT")


def protocol_for(params: PsiParams, parties: tuple[str, ...]) -> str:
    """The PSI protocol of this step: the one asked for, checked against the party count, or the default."""
    if params.protocol is None:
        return "PROTOCOL_RR22" if len(parties) == 2 else "PROTOCOL_ECDH_NPC"
    if len(parties) == 2 and params.protocol not in TWO_PARTY_PROTOCOLS:
        raise ParameterError(f"PSI protocol {params.protocol} is for more than two parties; two run RR22")
    if len(parties) > 2 and params.protocol in TWO_PARTY_PROTOCOLS:
        raise ParameterError(
            f"PSI protocol {params.protocol} is for two parties; {len(parties)} run PROTOCOL_ECDH_NPC or "
            "PROTOCOL_KKRT_NPC (PROTOCOL_ECDH_3PC for exactly three)"
        )
    if params.protocol == "PROTOCOL_ECDH_3PC" and len(parties) != 3:
        raise ParameterError("PSI protocol PROTOCOL_ECDH_3PC is for exactly three parties")
    return params.protocol


def _keys(params: PsiParams, parties: tuple[str, ...]) -> dict[str, str]:
    if isinstance(params.key, str):
        return {p: params.key for p in parties}
    missing = set(parties) - set(params.key)
    if missing or set(params.key) - set(parties):
        raise SchemaError("give a key column for every party of the job, and only for them")
    return dict(params.key)


def check(
    params: PsiParams, inputs: Mapping[str, ObjectInfo], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    info = one_table(inputs)
    keys = _keys(params, parties)
    receiver = params.receiver or parties[0]
    check_party(receiver, parties, "receiver")
    protocol_for(params, parties)
    for p in parties:
        cols = info.columns.get(p, {})
        if keys[p] not in cols:
            raise SchemaError(f"key column {keys[p]!r} is missing from party {p!r}'s table")
    out: dict[str, dict[str, ColumnKind]] = {}
    seen: set[str] = set()
    for p in parties:
        cols = {c: k for c, k in info.columns[p].items() if c != keys[p] or p == receiver}
        clash = seen & set(cols)
        if clash:
            raise SchemaError(f"column(s) held by several parties after PSI: {', '.join(sorted(clash))}")
        seen |= set(cols)
        out[p] = cols
    kinds = {info.columns[p][keys[p]] for p in parties}
    if len(kinds) > 1 and not kinds <= {"int", "float"}:
        raise SchemaError("the key columns have different types across parties")
    return {"table": ObjectInfo(kind="table", columns=out, meta={"keys": [keys[receiver]]})}


def _trace_files() -> set[Path]:
    return set(Path("/tmp").glob("psi_*.trace")) | set(Path(tempfile.gettempdir()).glob("psi_*.trace"))  # noqa: S108 - SecretFlow's PSI leaves its trace files there: found to be deleted


def _key_text(series: Any) -> Any:
    s = series
    if s.dtype.kind == "f" and (s.dropna() % 1 == 0).all():
        s = s.astype("Int64")
    return s.astype(str)


@algorithm(
    name="psi",
    summary="Private set intersection on a key column (RR22); aligns the parties' rows",
    params=PsiParams,
    inputs={"table": "table"},
    outputs={"table": "table"},
    roles={"every party": "contributes its key column", "receiver": "keeps the key column in the output"},
    reveals="the intersection keys (and its size) to both parties; no other column leaves its owner",
    reveals_to_all=True,
    spu="default",
    check=check,
)
def run(ctx: StepContext, params: PsiParams) -> None:
    import pandas as pd

    keys = _keys(params, ctx.parties)
    key = keys[ctx.self_party]
    receiver = params.receiver or ctx.parties[0]
    df = ctx.own_df("table")
    assert df is not None  # noqa: S101 - invariant for the type checker, not input validation
    df = df[df[key].notna()]
    text = _key_text(df[key])
    df = df.loc[~text.duplicated(keep="first").to_numpy()]
    text = text.loc[df.index]
    in_path = ctx.tmp_dir / "psi-in.csv"
    out_path = ctx.tmp_dir / "psi-out.csv"
    pd.DataFrame({"__key": text.to_numpy()}).to_csv(in_path, index=False)
    paths_in = {p: str(in_path) for p in ctx.parties}  # only this party's entry is used here
    paths_out = {p: str(out_path) for p in ctx.parties}
    before = _trace_files()
    try:
        ctx.spu.psi(
            keys={p: ["__key"] for p in ctx.parties},
            input_path=paths_in,
            output_path=paths_out,
            receiver=receiver,
            table_keys_duplicated={p: False for p in ctx.parties},
            broadcast_result=True,
            protocol=protocol_for(params, ctx.parties),
        )
    finally:  # the PSI library writes a perfetto trace into /tmp regardless of TMPDIR
        for path in _trace_files() - before:
            path.unlink(missing_ok=True)
    joined = pd.read_csv(out_path, dtype=str, keep_default_na=False)
    if joined.empty:
        raise EmptyResultError("the PSI intersection is empty")
    rows = df.set_axis(text.to_numpy()).loc[joined["__key"].to_numpy()].reset_index(drop=True)
    mine = list(ctx.output_infos["table"].columns.get(ctx.self_party, {}))
    ctx.set_table("table", rows[mine])
