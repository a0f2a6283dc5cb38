"""What an algorithm sees inside a party worker: `StepContext` (SPMD helpers over SecretFlow).

Every party worker runs the same algorithm function with its own ``self_party``
(SecretFlow production mode). Tables are kept per party as a plain pandas
DataFrame of the party's own columns (`TableSlice`); `StepContext.vdf` turns the
inputs into a SecretFlow `VDataFrame` whose partitions each party fills from its
own slice, and `StepContext.set_table_from_vdf` keeps only the own partition of
a result. `StepContext.local` reads the value of an object that lives on this
party's PYU without sending it anywhere (no `sf.reveal`).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from secureflow.compute.errors import SchemaError
from secureflow.compute.schema import ObjectInfo


def _json_safe(value: Any) -> Any:
    """Reports are hashed as RFC 8785 JSON: NaN/inf become None, numpy scalars plain numbers."""
    import math

    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _constant(frame: pd.DataFrame) -> Any:
    def source() -> pd.DataFrame:
        return frame

    return source


def _remote_only() -> pd.DataFrame:
    raise RuntimeError("a remote partition was evaluated locally")


def _identity(value: Any) -> Any:
    return value


@dataclass
class TableSlice:
    """This party's columns of a vertically partitioned table (None when it holds none)."""

    info: ObjectInfo
    df: pd.DataFrame | None
    digest: bytes | None = None  # content digest, cached


@dataclass
class ReportSlice:
    """A result this party received (None when it is not a receiver)."""

    info: ObjectInfo
    data: dict[str, Any] | None
    digest: bytes | None = None


@dataclass
class ModelHandle:
    """A trained model: the SecretFlow object, its metadata and this party's share files."""

    info: ObjectInfo
    obj: Any
    model_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    digest: bytes | None = None


WorkerObject = TableSlice | ReportSlice | ModelHandle


@dataclass
class StepContext:
    """The environment of one step inside one party worker."""

    self_party: str
    parties: tuple[str, ...]
    job_id: str
    seq: int
    inputs: dict[str, WorkerObject]
    input_infos: dict[str, ObjectInfo]
    output_infos: dict[str, ObjectInfo]
    devices: dict[str, Any]  # "pyu:<party>" -> PYU, "spu:<profile>" -> SPU
    spu_profiles: dict[str, dict[str, Any]]
    spu_profile: str | None
    tmp_dir: Path
    models_dir: Path
    output_names: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, WorkerObject] = field(default_factory=dict)

    def model_dir(self, slot: str) -> Path:
        """This party's directory for the model written to output ``slot`` (see secureflow.compute.models)."""
        from secureflow.compute.models import model_id_for

        path = self.models_dir / model_id_for(self.job_id, self.seq, self.output_names[slot])
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- devices -------------------------------------------------------------------------------
    def pyu(self, party: str) -> Any:
        return self.devices[f"pyu:{party}"]

    @property
    def spu(self) -> Any:
        if self.spu_profile is None:
            raise RuntimeError("this algorithm is registered without an SPU profile")
        return self.devices[f"spu:{self.spu_profile}"]

    @property
    def spu_runtime_config(self) -> dict[str, Any]:
        assert self.spu_profile is not None  # noqa: S101 - invariant for the type checker, not input validation
        return dict(self.spu_profiles[self.spu_profile])

    # -- inputs ----------------------------------------------------------------------------------
    def table(self, slot: str) -> TableSlice:
        obj = self.inputs[slot]
        assert isinstance(obj, TableSlice)  # noqa: S101 - invariant for the type checker, not input validation
        return obj

    def model(self, slot: str) -> ModelHandle:
        obj = self.inputs[slot]
        assert isinstance(obj, ModelHandle)  # noqa: S101 - invariant for the type checker, not input validation
        return obj

    def own_df(self, slot: str) -> pd.DataFrame | None:
        return self.table(slot).df

    def vdf(self, slot: str, columns: list[str] | None = None) -> Any:
        """A VDataFrame over ``columns`` (all when None) of input table ``slot``, in party order."""
        from secretflow.data.core import partition
        from secretflow.data.vertical import VDataFrame

        info = self.input_infos[slot]
        wanted = info.all_columns() if columns is None else list(columns)
        by_party = info.locate(wanted)
        own = self.table(slot).df
        parts = {}
        for party in self.parties:
            cols = by_party.get(party)
            if not cols:
                continue
            if party == self.self_party:
                if own is None or any(c not in own.columns for c in cols):
                    raise SchemaError(f"this party's slice of {slot!r} lacks column(s) it should hold")
                source = _constant(own[cols].copy())
            else:
                source = _remote_only  # runs only on the owning party, never here
            parts[self.pyu(party)] = partition(source, device=self.pyu(party))
        return VDataFrame(partitions=parts)

    def local(self, obj: Any) -> Any:
        """The value of a PYUObject on this party's PYU (nothing is sent to anyone)."""
        if obj.device.party != self.self_party:
            raise RuntimeError("local() on another party's object")
        return obj.data.get_object()

    def deliver(self, obj: Any, receivers: list[str]) -> Any:
        """Send a PYUObject from its owner to each receiver; the value here if this party is one."""
        owner = obj.device.party
        value = None
        for party in receivers:
            # PYU->PYU ``to`` only re-labels the reference; a task on the receiver makes it fetch the value
            moved = obj if party == owner else self.pyu(party)(_identity)(obj.to(self.pyu(party)))
            if party == self.self_party:
                value = self.local(moved)
        return value

    def own_partition_df(self, vdf: Any) -> pd.DataFrame | None:
        """This party's partition of a VDataFrame, as pandas (None when it holds no columns)."""
        pyu = self.pyu(self.self_party)
        if pyu not in vdf.partitions:
            return None
        part = vdf.partitions[pyu]
        value = self.local(part.data)
        return value if isinstance(value, pd.DataFrame) else pd.DataFrame(value)

    def partition_fn(self, fn: Any, vdf: Any, out_columns: dict[str, list[str]] | None = None) -> Any:
        """Apply ``fn(pandas_df) -> pandas_df`` to every partition on its owner's PYU (no reveal)."""
        from secretflow.data.core import partition
        from secretflow.data.vertical import VDataFrame

        parts = {}
        for pyu, part in vdf.partitions.items():
            if out_columns is not None and not out_columns.get(pyu.party):
                continue
            parts[pyu] = partition(pyu(fn)(part.data))
        return VDataFrame(partitions=parts)

    # -- outputs ---------------------------------------------------------------------------------
    def set_table(self, slot: str, df: pd.DataFrame | None) -> None:
        info = self.output_infos[slot]
        mine = list(info.columns.get(self.self_party, {}))
        if mine:
            if df is None or list(df.columns) != mine:
                raise SchemaError(f"output {slot!r} does not have the columns its plan announced")
            df = df.reset_index(drop=True)
        else:
            df = None
        self.outputs[slot] = TableSlice(info=info, df=df)

    def set_table_from_vdf(self, slot: str, vdf: Any) -> None:
        df = self.own_partition_df(vdf)
        mine = list(self.output_infos[slot].columns.get(self.self_party, {}))
        if df is not None and mine:
            df = df[mine]
        self.set_table(slot, df)

    def set_report(self, slot: str, data: dict[str, Any] | None) -> None:
        info = self.output_infos[slot]
        receivers = info.meta.get("receivers", [])
        clean = _json_safe(data) if data is not None and self.self_party in receivers else None
        self.outputs[slot] = ReportSlice(info=info, data=clean)

    def set_model(self, slot: str, handle: ModelHandle) -> None:
        self.outputs[slot] = handle

    def cleanup(self) -> None:
        gc.collect()
