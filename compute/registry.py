"""The algorithm registry: one decorator per algorithm; modules in `compute/algorithms/` are discovered.

An algorithm is a module in `compute/algorithms/` that decorates its worker-side
function with :func:`algorithm`, giving

* ``name``: the identifier used in manifests and step records;
* ``params``: a pydantic model (``extra="forbid"``) validated before anything runs;
* ``inputs`` / ``outputs``: slot names and kinds (``table``, ``model``, ``report``);
* ``roles``: what each party does (e.g. "label holder", "receiver");
* ``reveals``: what the algorithm reveals and to whom (shown by ``secureflow algorithms``);
* ``spu``: which SPU profile it runs on (``default``: FM128/18 fraction bits,
  ``precise``: FM128/40 fraction bits; None for PYU-only algorithms);
* ``check``: a pure function over metadata (which party holds which columns and
  of which type) that validates the step and returns its outputs' metadata; it
  runs in the coordinator for every step of a manifest before the first step runs.

The worker function itself runs inside each party worker (SPMD, see
`secureflow.compute.worker.context.StepContext`) and imports SecretFlow lazily, so this
module and `describe_algorithms` never load SecretFlow.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from secureflow.compute.errors import ModelError, ParameterError, UnknownAlgorithmError
from secureflow.compute.schema import ObjectInfo

if TYPE_CHECKING:
    from secureflow.compute.worker.context import ModelHandle, StepContext

SlotKind = Literal["table", "model", "report"]
SpuProfile = Literal["default", "precise"]

CheckFn = Callable[[Any, Mapping[str, ObjectInfo], tuple[str, ...]], dict[str, ObjectInfo]]
RunFn = Callable[["StepContext", Any], None]


@dataclass(frozen=True)
class AlgorithmSpec:
    """Everything the engine knows about one registered algorithm."""

    name: str
    summary: str
    params: type[BaseModel]
    inputs: Mapping[str, SlotKind]
    outputs: Mapping[str, SlotKind]
    roles: Mapping[str, str]
    reveals: str
    spu: SpuProfile | None
    check: CheckFn
    run: RunFn
    optional_inputs: frozenset[str] = field(default_factory=frozenset)
    reveals_to_all: bool = False
    """Whether the result goes to every party by design (beyond ``reveal_to``/``receiver`` parameters)."""

    def parse_params(self, raw: Mapping[str, Any]) -> BaseModel:
        try:
            return self.params.model_validate(dict(raw))
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) or "<root>" for e in exc.errors()})
            raise ParameterError(
                f"invalid parameters for {self.name}: {', '.join(fields)} "
                f"({'; '.join(e['msg'] for e in exc.errors()[:3])})"
            ) from None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "inputs": dict(self.inputs),
            "optional_inputs": sorted(self.optional_inputs),
            "outputs": dict(self.outputs),
            "roles": dict(self.roles),
            "reveals": self.reveals,
            "reveals_to_all": self.reveals_to_all,
            "spu_profile": self.spu,
            "params_schema": self.params.model_json_schema(),
        }


_REGISTRY: dict[str, AlgorithmSpec] = {}
_DISCOVERED = False


def algorithm(
    *,
    name: str,
    summary: str,
    params: type[BaseModel],
    inputs: Mapping[str, SlotKind],
    outputs: Mapping[str, SlotKind],
    roles: Mapping[str, str],
    reveals: str,
    check: CheckFn,
    spu: SpuProfile | None = None,
    optional_inputs: frozenset[str] = frozenset(),
    reveals_to_all: bool = False,
) -> Callable[[RunFn], RunFn]:
    """Register the decorated worker function as algorithm ``name``."""

    def register(fn: RunFn) -> RunFn:
        if name in _REGISTRY and _REGISTRY[name].run is not fn:
            raise ValueError(f"algorithm {name!r} is registered twice")
        _REGISTRY[name] = AlgorithmSpec(
            name=name,
            summary=summary,
            params=params,
            inputs=dict(inputs),
            outputs=dict(outputs),
            roles=dict(roles),
            reveals=reveals,
            spu=spu,
            check=check,
            run=fn,
            optional_inputs=optional_inputs,
            reveals_to_all=reveals_to_all,
        )
        return fn

    return register


def discover() -> None:
    """Import every module under `secureflow.compute.algorithms` (each registers itself)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    import secureflow.compute.algorithms as package

    for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if not module.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(module.name)
    _DISCOVERED = True


def get_algorithm(name: str) -> AlgorithmSpec:
    discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownAlgorithmError(f"unknown algorithm {name!r}") from None


def algorithm_names() -> list[str]:
    discover()
    return sorted(_REGISTRY)


def describe_algorithms() -> list[dict[str, Any]]:
    """Every registered algorithm with its roles, reveals and parameter JSON schema (for the CLI)."""
    discover()
    return [_REGISTRY[n].describe() for n in sorted(_REGISTRY)]


# ------------------------------------------------------------------ model loaders

LoaderFn = Callable[["StepContext", Path, dict[str, Any]], "ModelHandle"]
_LOADERS: dict[str, LoaderFn] = {}


def model_loader(algorithm: str) -> Callable[[LoaderFn], LoaderFn]:
    """Register how models trained by ``algorithm`` are restored inside a worker."""

    def register(fn: LoaderFn) -> LoaderFn:
        _LOADERS[algorithm] = fn
        return fn

    return register


def get_loader(algorithm: str) -> LoaderFn:
    discover()
    try:
        return _LOADERS[algorithm]
    except KeyError:
        raise ModelError(f"no loader for models of {algorithm!r}") from None


FilesFn = Callable[[Path, dict[str, Any], str], list[Path]]
_FILES: dict[str, FilesFn] = {}


def model_files(algorithm: str) -> Callable[[FilesFn], FilesFn]:
    """Register which files in a party's model folder are that party's own parts of an ``algorithm`` model.

    The function takes (model folder, metadata, party name) and returns the paths the party's share digest
    was taken of when the model was trained; integrity checks re-hash exactly these before a load.
    """

    def register(fn: FilesFn) -> FilesFn:
        _FILES[algorithm] = fn
        return fn

    return register


def get_model_files(algorithm: str) -> FilesFn:
    discover()
    try:
        return _FILES[algorithm]
    except KeyError:
        raise ModelError(f"no share file layout known for models of {algorithm!r}") from None
