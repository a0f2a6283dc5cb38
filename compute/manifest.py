"""The job manifest: parties, dataset references per party, ordered steps; validated before anything runs.

A manifest names the parties (a short name and the member's address), the
datasets (a logical vertically partitioned table = one file per party, given as
a path relative to that party's data directory), models trained by earlier
jobs (by model id), and the ordered steps. A step names a registered
algorithm, its parameters, its input objects (datasets, models or earlier
steps' outputs) per slot and the names its outputs get.

`plan_job` validates the whole job on metadata only (registry, parameter
models, references, parties named in parameters, and each algorithm's
``check`` over which party holds which column), so an unknown algorithm, an
out-of-range parameter or a column missing at step 5 is reported before step 0
runs. The dataset metadata comes from the party workers, which read their own
files; the coordinator never sees a cell.

Commitments are salted with the job secret (`secureflow.ledger.records.commitment`):
the manifest hash is ``manifest_commitment(normalised manifest JSON, job_secret)``
and each step's ``params_hash`` is ``params_hash(step params as in the manifest,
job_secret)``, so an auditor holding the manifest and the job secret (the audit
bundle) recomputes both, and nobody else can guess them.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from secureflow.compute.errors import ComputeError, ManifestError, SchemaError
from secureflow.compute.registry import AlgorithmSpec, get_algorithm
from secureflow.compute.schema import ObjectInfo
from secureflow.ledger.records import Address, manifest_commitment, params_hash

OUTPUT_FOLDER = "out"
"""The folder of each party's data directory that steps save into (``save`` paths start with it)."""

PartyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
ObjectName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
ModelId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


def code_version() -> str:
    """The code version identifier recorded with every step (package and SecretFlow versions)."""
    try:
        sf = importlib.metadata.version("secretflow-lite")
    except importlib.metadata.PackageNotFoundError:
        sf = "unknown"
    try:
        own = importlib.metadata.version("secureflow")
    except importlib.metadata.PackageNotFoundError:
        own = "0.1.0"
    return f"secureflow-{own}.sf-{sf}".replace("+", ".")


class PartySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PartyName
    address: Address


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, ObjectName] = Field(default_factory=dict)
    outputs: dict[str, ObjectName] = Field(default_factory=dict)
    save: dict[str, str] = Field(
        default_factory=dict,
        description="output slot -> file relative to each party's data dir (each party saves its own slice)",
    )

    @field_validator("save")
    @classmethod
    def _relative(cls, value: dict[str, str]) -> dict[str, str]:
        for slot, path in value.items():
            _check_relative(path, f"save path of {slot!r}")
            if PurePosixPath(path).parts[0] != OUTPUT_FOLDER or len(PurePosixPath(path).parts) < 2:
                raise ValueError(
                    f"save path of {slot!r}: give a file inside the party's output folder, "
                    f"{OUTPUT_FOLDER}/… (a step never writes elsewhere in the data folder)"
                )
        return value


def _check_relative(path: str, what: str) -> None:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        raise ValueError(f"{what}: give a path relative to the party's data dir")


class JobManifest(BaseModel):
    """What a member submits: who takes part, on which data, running which steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    name: str = Field(default="job", min_length=1, max_length=128)
    parties: tuple[PartySpec, ...] = Field(min_length=2, max_length=8)
    datasets: dict[ObjectName, dict[PartyName, str]] = Field(default_factory=dict)
    models: dict[ObjectName, ModelId] = Field(default_factory=dict)
    steps: tuple[StepSpec, ...] = Field(min_length=1, max_length=256)
    spu_protocol: Literal["SEMI2K", "ABY3"] = Field(
        default="SEMI2K",
        # left out of the normalised JSON when it is the default: manifests written before this field
        # existed keep their commitment (the manifest hash anchored in their job id)
        exclude_if=lambda value: value == "SEMI2K",
        description="the SPU protocol of the job's secret-shared steps: SEMI2K (any number of parties) or "
        "ABY3 (exactly three parties; honest majority). Part of the manifest commitment and of every "
        "model's stored runtime config.",
    )

    @model_validator(mode="after")
    def _aby3_needs_three_parties(self) -> JobManifest:
        if self.spu_protocol == "ABY3" and len(self.parties) != 3:
            raise ValueError(
                f"spu_protocol ABY3 runs exactly three parties, not {len(self.parties)}: "
                "use SEMI2K (any number of parties)"
            )
        return self

    @model_validator(mode="after")
    def _saves_overwrite_nothing(self) -> JobManifest:
        inputs = {path for per_party in self.datasets.values() for path in per_party.values()}
        seen: dict[str, int] = {}
        for seq, step in enumerate(self.steps):
            for path in step.save.values():
                if path in inputs:
                    raise ValueError(
                        f"step {seq} saves to {path!r}, a dataset of this job: outputs never overwrite inputs"
                    )
                if path in seen:
                    raise ValueError(f"steps {seen[path]} and {seq} both save to {path!r}")
                seen[path] = seq
        return self

    @field_validator("datasets")
    @classmethod
    def _relative_paths(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name, per_party in value.items():
            for party, path in per_party.items():
                _check_relative(path, f"dataset {name!r} of party {party!r}")
        return value

    def party_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parties)

    def address_of(self, party: str) -> str:
        return next(p.address for p in self.parties if p.name == party)

    def manifest_hash(self, job_secret: str | bytes) -> str:
        """The manifest's commitment under the job secret (anchored at job start, part of the job id):
        keccak256(job_secret || RFC 8785 JSON of the normalised manifest)."""
        return manifest_commitment(self.model_dump(mode="json"), job_secret)

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | str | bytes) -> JobManifest:
        try:
            if isinstance(raw, (str, bytes)):
                return cls.model_validate_json(raw)
            return cls.model_validate(dict(raw))
        except ValidationError as exc:
            where = sorted({".".join(str(p) for p in e["loc"]) or "<root>" for e in exc.errors()})
            raise ManifestError(
                f"invalid manifest at {', '.join(where)}: {'; '.join(e['msg'] for e in exc.errors()[:3])}"
            ) from None


@dataclass(frozen=True)
class PlannedStep:
    """One validated step: its algorithm, parsed parameters and input/output metadata."""

    seq: int
    spec: AlgorithmSpec
    step: StepSpec
    params: BaseModel
    params_hash: str
    inputs: dict[str, str]  # slot -> object name
    outputs: dict[str, str]  # slot -> object name
    input_infos: dict[str, ObjectInfo]
    output_infos: dict[str, ObjectInfo]

    def params_json(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")


def check_structure(manifest: JobManifest) -> None:
    """Checks that need no party metadata: parties, datasets, algorithms, parameters, references."""
    names = manifest.party_names()
    if len(set(names)) != len(names):
        raise ManifestError("party names must be unique")
    addresses = [p.address.lower() for p in manifest.parties]
    if len(set(addresses)) != len(addresses):
        raise ManifestError("party addresses must be unique")
    for ds, per_party in manifest.datasets.items():
        unknown = set(per_party) - set(names)
        if unknown:
            raise ManifestError(f"dataset {ds!r} names unknown party(ies): {', '.join(sorted(unknown))}")
        if not per_party:
            raise ManifestError(f"dataset {ds!r} has no party file")
    clash = set(manifest.datasets) & set(manifest.models)
    if clash:
        raise ManifestError(f"names used for both a dataset and a model: {', '.join(sorted(clash))}")
    known = set(manifest.datasets) | set(manifest.models)
    for seq, step in enumerate(manifest.steps):
        spec = get_algorithm(step.algorithm)
        spec.parse_params(step.params)
        required = set(spec.inputs) - spec.optional_inputs
        missing = required - set(step.inputs)
        extra = set(step.inputs) - set(spec.inputs)
        if missing or extra:
            raise ManifestError(
                f"step {seq} ({spec.name}): inputs must be {sorted(spec.inputs)}"
                f" (missing {sorted(missing)}, unknown {sorted(extra)})"
            )
        for slot, ref in step.inputs.items():
            if ref not in known:
                raise ManifestError(f"step {seq} ({spec.name}): input {slot!r} refers to unknown {ref!r}")
        bad_out = (set(step.outputs) | set(step.save)) - set(spec.outputs)
        if bad_out:
            raise ManifestError(f"step {seq} ({spec.name}): unknown output slot(s) {sorted(bad_out)}")
        for slot in spec.outputs:
            name = step.outputs.get(slot, f"s{seq}.{slot}")
            if name in known:
                raise ManifestError(f"step {seq} ({spec.name}): output name {name!r} is already used")
            known.add(name)


def plan_job(
    manifest: JobManifest,
    dataset_infos: Mapping[str, ObjectInfo],
    model_infos: Mapping[str, ObjectInfo] | None = None,
    *,
    job_secret: str | bytes,
) -> list[PlannedStep]:
    """Validate every step on metadata and return the plan (raises a ComputeError before anything runs).

    Each step's ``params_hash`` is the commitment of its ``params``, as the manifest gives them, under
    ``job_secret`` (an auditor recomputes it from the manifest in the audit bundle)."""
    check_structure(manifest)
    parties = manifest.party_names()
    infos: dict[str, ObjectInfo] = dict(dataset_infos)
    infos.update(model_infos or {})
    plan: list[PlannedStep] = []
    for seq, step in enumerate(manifest.steps):
        spec = get_algorithm(step.algorithm)
        params = spec.parse_params(step.params)
        in_infos = {slot: infos[ref] for slot, ref in step.inputs.items()}
        for slot, info in in_infos.items():
            if info.kind != spec.inputs[slot]:
                want = spec.inputs[slot]
                raise SchemaError(
                    f"step {seq} ({spec.name}): input {slot!r} must be a {want}, got a {info.kind}"
                )
        try:
            out_infos = spec.check(params, in_infos, parties)
        except ComputeError as exc:
            raise type(exc)(f"step {seq} ({spec.name}): {exc.args[0]}") from None
        outputs = {slot: step.outputs.get(slot, f"s{seq}.{slot}") for slot in spec.outputs}
        for slot, name in outputs.items():
            infos[name] = out_infos[slot]
        plan.append(
            PlannedStep(
                seq=seq,
                spec=spec,
                step=step,
                params=params,
                params_hash=params_hash(step.params, job_secret),
                inputs=dict(step.inputs),
                outputs=outputs,
                input_infos=in_infos,
                output_infos=dict(out_infos),
            )
        )
    return plan
