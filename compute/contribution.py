"""Leave-one-party-out contribution, measured by running the coalitions as real jobs on the engine.

Issue 7 (b): a party's contribution is the model quality it adds. Given a job
manifest that trains a model (``ss_lr`` or ``ss_xgb``), predicts with it
(``secure_predict`` to the label party) and evaluates the prediction
(``biclassification_eval`` or ``regression_eval``), `measure_leave_one_out`
runs one job per coalition on the party workers:

* ``all``: every party's features, as the manifest selects them;
* ``without <party>``, for each party: the training step's features minus that
  party's. The rows stay those of the full pipeline (the same PSI, the same
  evaluation rows), and the label holder's label stays the target (vertical
  training needs it), so what changes is only the features a party brings.

Each coalition is an ordinary job: planned on metadata, run step by step and
recorded through the same recorder (one step record per step, co-signed,
anchored like any other; the trained model too when the recorder records
models). The coalition manifests are the original one trimmed to the steps the
evaluation depends on, without ``save`` (nothing is written into the parties'
data folders), with the training step's ``features`` made explicit, and with
the evaluation revealed to its owner only (the label party). From that party's
report only the chosen metric is kept: the metric of each coalition is the one
value revealed for settlement; counts, KS, F1 and the other metrics are
dropped, never logged or returned.

Metrics (by the evaluation algorithm; the first is the default)::

    biclassification_eval   auc, ks, f1_score                              (higher is better)
    regression_eval         r2_score (higher is better); mean_squared_errors,
                            root_mean_squared_errors, mean_abs_err,
                            mean_abs_percent_err (lower is better)

Everything is validated on metadata before the first coalition runs: a
manifest without an evaluation step, an evaluation that does not score a model
trained in the manifest, or a coalition that would have no feature left
raises a `secureflow.compute.errors.ContributionManifestError` (nothing runs, nothing is
recorded). A coalition whose job fails raises `CoalitionFailedError` naming the
coalition, its job id and the failed step.

The result, `LeaveOneOutMeasurement`, carries per coalition its job id and the
metric, and the inputs document of ``secureflow.ledger.settlement.contribution.LeaveOneOutInputs``
(``inputs_document()``; ``to_inputs()`` parses it). ``ledger.settlement.contribution``
is contribution records and weights maths only (no web3), so `compute` imports it like
``ledger.records``.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from secureflow.compute.errors import (
    CoalitionFailedError,
    ComputeError,
    ContributionManifestError,
    NoFeaturesLeftError,
)
from secureflow.compute.manifest import JobManifest, check_structure, plan_job
from secureflow.compute.registry import get_algorithm
from secureflow.compute.runner import (
    Recorder,
    _close_workers,
    _error_from_reply,
    _merge_infos,
    _model_infos,
    check_engine_parties,
    open_on_workers,
    run_job,
)

if TYPE_CHECKING:
    from secureflow.ledger.recorder import ModelAnchors
from secureflow.compute.schema import ObjectInfo
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.records import StepRecord, new_job_secret
from secureflow.ledger.settlement.contribution import LeaveOneOutInputs

TRAINING_ALGORITHMS = frozenset({"ss_lr", "ss_xgb"})
PREDICT_ALGORITHM = "secure_predict"

#: evaluation algorithm -> metric -> higher is better (the first metric is the default)
METRICS: dict[str, dict[str, bool]] = {
    "biclassification_eval": {"auc": True, "ks": True, "f1_score": True},
    "regression_eval": {
        "r2_score": True,
        "mean_squared_errors": False,
        "root_mean_squared_errors": False,
        "mean_abs_err": False,
        "mean_abs_percent_err": False,
    },
}

ALL = "all"


def coalition_name(left_out: str | None) -> str:
    """``"all"`` or ``"without <party>"``."""
    return ALL if left_out is None else f"without {left_out}"


# ------------------------------------------------------------------ results


class CoalitionResult(BaseModel):
    """One coalition's job and the metric its evaluation revealed to the label party."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    coalition: str = Field(description='"all" or "without <party>"')
    left_out: str | None = Field(description="the party whose features were excluded (None: every party)")
    features: dict[str, list[str]] = Field(description="party -> feature columns the model was trained on")
    job_id: str
    manifest_hash: str
    metric: float
    seconds: float


class LeaveOneOutMeasurement(BaseModel):
    """The coalitions' metrics and the leave-one-out inputs they make."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    higher_is_better: bool
    evaluation_algorithm: str
    training_algorithm: str
    label_party: str
    parties: dict[str, str] = Field(description="party name -> member address, in manifest order")
    coalitions: tuple[CoalitionResult, ...]

    @property
    def full(self) -> CoalitionResult:
        return next(c for c in self.coalitions if c.left_out is None)

    def without(self, party: str) -> CoalitionResult:
        return next(c for c in self.coalitions if c.left_out == party)

    def inputs_document(self) -> dict[str, Any]:
        """The JSON document of ``LeaveOneOutInputs`` (what `settle propose` reads)."""
        return {
            "method": "leave_one_out",
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "full": self.full.metric,
            "parties": [
                {"party": address, "without": self.without(name).metric}
                for name, address in self.parties.items()
            ],
        }

    def to_inputs(self) -> LeaveOneOutInputs:
        """``LeaveOneOutInputs``, ready for ``compute_weights`` and the contribution record."""
        return LeaveOneOutInputs.model_validate(self.inputs_document())


@dataclass(frozen=True)
class Progress:
    """A progress report: a coalition started, one of its steps was recorded, or it finished."""

    event: Literal["started", "step", "finished"]
    coalition: str
    index: int  # 0-based index of the coalition
    coalitions: int  # number of coalitions
    steps_done: int  # steps recorded in this coalition so far
    steps: int  # steps per coalition
    algorithm: str | None = None  # the step just recorded (event "step")

    @property
    def total_steps(self) -> int:
        return self.coalitions * self.steps

    @property
    def completed_steps(self) -> int:
        return self.index * self.steps + self.steps_done


ProgressFn = Callable[[Progress], None]


# ------------------------------------------------------------------ planning


@dataclass(frozen=True)
class CoalitionPlan:
    """What is run for one coalition."""

    left_out: str | None
    features: dict[str, list[str]]
    manifest: JobManifest

    @property
    def name(self) -> str:
        return coalition_name(self.left_out)


@dataclass(frozen=True)
class LeaveOneOutPlan:
    """Every coalition's manifest, validated on metadata, and the evaluation they share."""

    metric: str
    higher_is_better: bool
    evaluation_algorithm: str
    evaluation_output: str
    training_algorithm: str
    label_party: str
    owner: str  # the party that computes (and receives) the evaluation
    coalitions: tuple[CoalitionPlan, ...]


def _producers(manifest: JobManifest) -> dict[str, int]:
    """Object name -> index of the step that outputs it (default names ``s<seq>.<slot>`` included)."""
    out: dict[str, int] = {}
    for seq, step in enumerate(manifest.steps):
        for slot in get_algorithm(step.algorithm).outputs:
            out[step.outputs.get(slot, f"s{seq}.{slot}")] = seq
    return out


def _find_chain(manifest: JobManifest, metric: str | None) -> tuple[int, int, int, str, bool]:
    """(evaluation, prediction, training) step indexes of the last evaluation, its metric and direction."""
    evals = [seq for seq, step in enumerate(manifest.steps) if step.algorithm in METRICS]
    if not evals:
        raise ContributionManifestError(
            "the manifest has no evaluation step, so there is no metric to compare the coalitions on",
            hint=(
                "add secure_predict (receiver: the label party) and biclassification_eval or "
                "regression_eval after the training step"
            ),
        )
    ev = evals[-1]
    ev_alg = manifest.steps[ev].algorithm
    choices = METRICS[ev_alg]
    chosen = metric or next(iter(choices))
    if chosen not in choices:
        raise ContributionManifestError(
            f"metric {chosen!r} is not produced by {ev_alg} (step {ev})",
            hint=f"choose one of {', '.join(choices)}",
        )
    producers = _producers(manifest)
    scores = manifest.steps[ev].inputs.get("scores", "")
    pred = producers.get(scores)
    if pred is None or manifest.steps[pred].algorithm != PREDICT_ALGORITHM:
        raise ContributionManifestError(
            f"the evaluation (step {ev}) does not score the output of a secure_predict step",
            hint="evaluate the scores of secure_predict with the model trained in this manifest",
        )
    model = manifest.steps[pred].inputs.get("model", "")
    train = producers.get(model)
    if train is None or manifest.steps[train].algorithm not in TRAINING_ALGORITHMS:
        raise ContributionManifestError(
            f"the evaluated model {model!r} is not trained in this manifest (by ss_lr or ss_xgb)",
            hint="train the model in the manifest: leaving a party out means training without its features",
        )
    return ev, pred, train, chosen, choices[chosen]


def check_manifest(
    manifest: JobManifest | Mapping[str, Any] | str | bytes, metric: str | None = None
) -> JobManifest:
    """The checks that need no party metadata (structure, evaluation -> prediction -> training, metric);
    returns the parsed manifest. `measure_leave_one_out` runs them too; call it first to fail fast."""
    if not isinstance(manifest, JobManifest):
        manifest = JobManifest.parse(manifest)
    check_structure(manifest)
    _find_chain(manifest, metric)
    return manifest


def _trimmed_steps(manifest: JobManifest, last: int) -> list[int]:
    """The indexes of the steps that step ``last`` depends on (itself included), in order."""
    producers = _producers(manifest)
    needed = {last}
    for seq in range(last, -1, -1):
        if seq not in needed:
            continue
        for ref in manifest.steps[seq].inputs.values():
            if ref in producers:
                needed.add(producers[ref])
    return sorted(needed)


def _coalition_manifest(
    manifest: JobManifest,
    keep: list[int],
    train: int,
    ev: int,
    features: list[str],
    owner: str,
    left_out: str | None,
) -> JobManifest:
    steps: list[dict[str, Any]] = []
    used: set[str] = set()
    for seq in keep:
        step = manifest.steps[seq]
        spec = get_algorithm(step.algorithm)
        params = dict(step.params)
        if seq == train:
            params["features"] = list(features)
        if seq == ev:
            params["reveal_to"] = [owner]
        used.update(step.inputs.values())
        steps.append(
            {
                "algorithm": step.algorithm,
                "params": params,
                "inputs": dict(step.inputs),
                # names made explicit: the trimmed job renumbers its steps
                "outputs": {slot: step.outputs.get(slot, f"s{seq}.{slot}") for slot in spec.outputs},
            }
        )
    document = manifest.model_dump(mode="json")
    document["name"] = f"{manifest.name} [leave-one-out: {coalition_name(left_out)}]"[:128]
    document["steps"] = steps
    document["datasets"] = {k: v for k, v in manifest.datasets.items() if k in used}
    document["models"] = {k: v for k, v in manifest.models.items() if k in used}
    return JobManifest.parse(document)


def plan_leave_one_out(
    manifest: JobManifest,
    infos: Mapping[str, ObjectInfo],
    model_infos: Mapping[str, ObjectInfo] | None = None,
    *,
    metric: str | None = None,
) -> LeaveOneOutPlan:
    """Build and validate every coalition's manifest on metadata (``infos``: the datasets' columns per
    party). Raises a `ContributionManifestError` (or the manifest's own `ComputeError`) before any
    compute."""
    check_structure(manifest)
    ev, _, train, chosen, higher = _find_chain(manifest, metric)
    full_plan = plan_job(manifest, infos, model_infos, job_secret=new_job_secret())  # validation only
    model_info = full_plan[train].output_infos["model"]
    report_info = full_plan[ev].output_infos["report"]
    owner = str(report_info.meta["owner"])
    label_party = str(model_info.meta["label_party"])
    parties = manifest.party_names()
    by_party = {p: list(model_info.columns.get(p, {})) for p in parties}
    keep = _trimmed_steps(manifest, ev)
    train_alg = manifest.steps[train].algorithm
    coalitions: list[CoalitionPlan] = []
    for left_out in (None, *parties):
        features = {p: cols for p, cols in by_party.items() if p != left_out and cols}
        flat = [c for cols in features.values() for c in cols]
        if not flat:
            assert left_out is not None  # noqa: S101 - invariant for the type checker, not input validation
            raise NoFeaturesLeftError(
                f"without party {left_out!r} the training step (step {train}, {train_alg}) has no feature "
                f"left: every feature it selects is {left_out!r}'s"
            )
        coalition = _coalition_manifest(manifest, keep, train, ev, flat, owner, left_out)
        try:
            plan_job(coalition, infos, model_infos, job_secret=new_job_secret())
        except ComputeError as exc:
            raise type(exc)(
                f"the coalition {coalition_name(left_out)!r} is not a valid job: {exc.args[0]}"
            ) from None
        coalitions.append(CoalitionPlan(left_out=left_out, features=features, manifest=coalition))
    return LeaveOneOutPlan(
        metric=chosen,
        higher_is_better=higher,
        evaluation_algorithm=manifest.steps[ev].algorithm,
        evaluation_output=_report_name(manifest, ev),
        training_algorithm=train_alg,
        label_party=label_party,
        owner=owner,
        coalitions=tuple(coalitions),
    )


def _report_name(manifest: JobManifest, seq: int) -> str:
    """The name of step ``seq``'s report output."""
    return manifest.steps[seq].outputs.get("report", f"s{seq}.report")


def _metadata(engine: Engine, manifest: JobManifest) -> tuple[dict[str, ObjectInfo], dict[str, ObjectInfo]]:
    """The datasets' (and models') metadata from the party workers: column names and kinds only."""
    parties = manifest.party_names()
    check_engine_parties(engine, manifest)
    job_id = f"plan-{uuid.uuid4().hex}"  # a workers' session for reading metadata, never recorded
    replies = open_on_workers(engine, manifest, job_id)
    try:
        for p in parties:
            if not replies[p].get("ok"):
                raise _error_from_reply(replies[p])
        return _merge_infos(replies, parties), _model_infos(manifest, replies, parties)
    finally:
        _close_workers(engine, job_id)


# ------------------------------------------------------------------ running


class _ProgressRecorder:
    """Forwards to the real recorder and reports each recorded step."""

    def __init__(self, inner: Recorder, on_step: Callable[[StepRecord], None]) -> None:
        self.inner = inner
        self.on_step = on_step

    def open_job(
        self, job_id: str, manifest_hash: str, creator: str, parties: Any, *, salt: str | None = None
    ) -> None:
        self.inner.open_job(job_id, manifest_hash, creator, parties, salt=salt)

    def record_step(self, record: StepRecord) -> Any:
        row = self.inner.record_step(record)
        self.on_step(record)
        return row

    def close_job(self, job_id: str, *, succeeded: bool, reason: str | None = None) -> None:
        self.inner.close_job(job_id, succeeded=succeeded, reason=reason)

    def record_model(self, job_id: str, model_id: str, version: int, model_hash: str) -> None:
        record_model = getattr(self.inner, "record_model", None)
        if record_model is not None:
            record_model(job_id, model_id, version, model_hash)


def _metric_value(report: Mapping[str, Any] | None, metric: str, name: str, job_id: str) -> float:
    value = None if report is None else report.get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise CoalitionFailedError(
            f"the coalition {name!r} (job {job_id}) produced no finite {metric}",
            hint=(
                "check that the evaluation rows hold both classes (AUC, KS) or vary (R2); "
                "or choose another metric"
            ),
        )
    return float(value)


def measure_leave_one_out(
    engine: Engine,
    manifest: JobManifest | Mapping[str, Any] | str,
    recorder: Recorder,
    *,
    metric: str | None = None,
    progress: ProgressFn | None = None,
    creator: str | None = None,
    model_anchors: ModelAnchors | None = None,
) -> LeaveOneOutMeasurement:
    """Run every coalition of ``manifest`` as a job on ``engine``, recorded through ``recorder``, and
    return their metrics. Validates all coalitions before the first one runs. A manifest that uses stored
    models needs ``model_anchors`` (see `secureflow.compute.runner.run_job`)."""
    manifest = check_manifest(manifest, metric)  # the cheap checks first: no worker round trip
    infos, model_infos = _metadata(engine, manifest)
    plan = plan_leave_one_out(manifest, infos, model_infos, metric=metric)
    report = progress or (lambda _: None)
    total = len(plan.coalitions)
    steps = len(plan.coalitions[0].manifest.steps)
    results: list[CoalitionResult] = []
    for index, coalition in enumerate(plan.coalitions):
        name = coalition.name
        report(Progress("started", name, index, total, 0, steps))
        done = [0]

        def on_step(record: StepRecord, name: str = name, index: int = index, done: list[int] = done) -> None:
            done[0] += 1
            report(Progress("step", name, index, total, done[0], steps, record.algorithm))

        t0 = time.monotonic()
        try:
            result = run_job(
                engine,
                coalition.manifest,
                _ProgressRecorder(recorder, on_step),
                creator=creator,
                model_anchors=model_anchors,
            )
        except ComputeError as exc:
            raise CoalitionFailedError(
                f"the coalition {name!r} could not run: {exc.error_class}: {exc.args[0]}"
            ) from exc
        if not result.succeeded:
            failed = result.steps[-1] if result.steps else None
            where = f"step {failed.seq} ({failed.algorithm})" if failed else "its start"
            raise CoalitionFailedError(
                f"the coalition {name!r} (job {result.job_id}) failed at {where}: {result.error_class}"
            )
        value = _metric_value(
            result.report(plan.evaluation_output, plan.owner), plan.metric, name, result.job_id
        )
        results.append(
            CoalitionResult(
                coalition=name,
                left_out=coalition.left_out,
                features={p: list(c) for p, c in coalition.features.items()},
                job_id=result.job_id,
                manifest_hash=result.manifest_hash,
                metric=value,
                seconds=time.monotonic() - t0,
            )
        )
        report(Progress("finished", name, index, total, done[0], steps))
    return LeaveOneOutMeasurement(
        metric=plan.metric,
        higher_is_better=plan.higher_is_better,
        evaluation_algorithm=plan.evaluation_algorithm,
        training_algorithm=plan.training_algorithm,
        label_party=plan.label_party,
        parties={p.name: p.address for p in manifest.parties},
        coalitions=tuple(results),
    )
