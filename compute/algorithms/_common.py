"""Helpers shared by the algorithm modules: parameter types and metadata checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from secureflow.compute.errors import ManifestError, SchemaError
from secureflow.compute.schema import ObjectInfo

Column = Annotated[str, StringConstraints(min_length=1, max_length=128)]
PartyRef = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class Params(BaseModel):
    """Base of every parameter model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def one_table(inputs: Mapping[str, ObjectInfo], slot: str = "table") -> ObjectInfo:
    info = inputs[slot]
    if info.kind != "table":
        raise SchemaError(f"input {slot!r} must be a table")
    return info


def check_party(party: str, parties: tuple[str, ...], what: str) -> None:
    if party not in parties:
        raise ManifestError(f"{what} {party!r} is not a party of this job")


def check_unique_columns(info: ObjectInfo, columns: list[str]) -> None:
    for col in columns:
        owners = [p for p, cols in info.columns.items() if col in cols]
        if len(owners) > 1:
            raise SchemaError(f"column {col!r} is held by several parties; run psi first or rename it")


def selected_columns(info: ObjectInfo, columns: list[str] | None, *, numeric: bool = True) -> list[str]:
    """``columns`` (checked) or, when None, every (numeric) column of the table but its PSI key."""
    if columns is None:
        keys = set(info.meta.get("keys", []))
        kinds = {"int", "float", "bool"}
        cols = [c for c in info.all_columns() if c not in keys and (not numeric or info.kind_of(c) in kinds)]
    else:
        if len(set(columns)) != len(columns):
            raise SchemaError("a column is listed twice")
        cols = list(columns)
    info.locate(cols)
    check_unique_columns(info, cols)
    if numeric:
        info.require_numeric(cols)
    if not cols:
        raise SchemaError("no column to work on")
    return cols


def same_table_with(info: ObjectInfo, changed: Mapping[str, str]) -> ObjectInfo:
    """A copy of ``info`` where the listed columns get new kinds."""
    cols = {p: {c: (changed.get(c, k)) for c, k in pc.items()} for p, pc in info.columns.items()}
    return ObjectInfo(kind="table", columns=cols, meta=dict(info.meta))  # type: ignore[arg-type]
