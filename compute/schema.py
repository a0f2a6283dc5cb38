"""Metadata about the objects a job passes between steps (never their contents).

A *table* is vertically partitioned: each party holds some columns of the same
rows. Its `ObjectInfo` says which party holds which column and of which kind
(``int``, ``float``, ``bool``, ``str``, ``other``). A *model* lists the feature
columns per party, the label party and the algorithm; a *report* lists its
receivers. Algorithms' ``check`` functions work on this metadata only, so a whole
manifest is validated before any step runs, and nothing here carries a cell value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from secureflow.compute.errors import SchemaError

ColumnKind = Literal["int", "float", "bool", "str", "other"]
NUMERIC_KINDS: frozenset[str] = frozenset({"int", "float", "bool"})


def column_kind(dtype: Any) -> ColumnKind:
    """The kind of a pandas/numpy dtype."""
    kind = getattr(dtype, "kind", "O")
    if kind == "b":
        return "bool"
    if kind in "iu":
        return "int"
    if kind == "f":
        return "float"
    if kind in "OSU":
        return "str"
    return "other"


class ObjectInfo(BaseModel):
    """What the coordinator knows about one named object of a job."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["table", "model", "report"]
    columns: dict[str, dict[str, ColumnKind]] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)

    def parties(self) -> list[str]:
        return [p for p, cols in self.columns.items() if cols]

    def party_of(self, column: str) -> str | None:
        for party, cols in self.columns.items():
            if column in cols:
                return party
        return None

    def all_columns(self) -> list[str]:
        return [c for cols in self.columns.values() for c in cols]

    def locate(self, columns: Iterable[str], *, what: str = "column") -> dict[str, list[str]]:
        """Group ``columns`` by the party holding them; SchemaError naming any that nobody holds."""
        out: dict[str, list[str]] = {}
        missing: list[str] = []
        for col in columns:
            party = self.party_of(col)
            if party is None:
                missing.append(col)
            else:
                out.setdefault(party, []).append(col)
        if missing:
            raise SchemaError(f"{what}(s) not found in any party's table: {', '.join(sorted(missing))}")
        return out

    def require_numeric(self, columns: Iterable[str]) -> None:
        bad = [c for c in columns if self.columns.get(self.party_of(c) or "", {}).get(c) not in NUMERIC_KINDS]
        if bad:
            raise SchemaError(f"column(s) must be numeric: {', '.join(sorted(bad))}")

    def kind_of(self, column: str) -> ColumnKind | None:
        party = self.party_of(column)
        return None if party is None else self.columns[party][column]


def table(columns: dict[str, dict[str, ColumnKind]]) -> ObjectInfo:
    return ObjectInfo(kind="table", columns={p: dict(c) for p, c in columns.items()})


def expect_kind(info: ObjectInfo, kind: str, slot: str) -> None:
    if info.kind != kind:
        raise SchemaError(f"input {slot!r} must be a {kind}, got a {info.kind}")
