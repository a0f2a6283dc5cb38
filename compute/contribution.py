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

With ``method="shapley"`` (at most 4 parties) the coalitions are every set of
parties that holds the label party, each trained on its parties' features only;
a set that brings no feature runs nothing (its value is the metric's baseline,
`BASELINES`); the weights come from exact Shapley values
(`secureflow.ledger.settlement.shapley`).

Each coalition job's id, salt and job secret are chosen before it runs and
handed to ``open_job``, so that the caller opens it on chain with every party's
consent first (`secureflow settle measure` asks each party's own worker, as the
API's coordinator does for a submitted job); the inputs name each coalition's
job, which `settle propose` checks on chain.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
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
from secureflow.ledger.records import StepRecord, job_id_for, new_job_salt, new_job_secret
from secureflow.ledger.settlement.contribution import LeaveOneOutInputs
from secureflow.ledger.settlement.shapley import ShapleyInputs

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

Method = Literal["leave_one_out", "shapley"]
METHODS: tuple[Method, ...] = ("leave_one_out", "shapley")

#: metric -> its value for a model without any feature (a constant score): the value of a coalition
#: that brings no feature, in Shapley values (`secureflow.ledger.settlement.shapley`)
BASELINES: dict[str, float] = {"auc": 0.5, "ks": 0.0, "r2_score": 0.0}

MAX_SHAPLEY_PARTIES = 4  # 2^(N-1) coalition jobs: 8 for 4 parties


def coalition_name(left_out: str | None) -> str:
    """``"all"`` or ``"without <party>"``."""
    return ALL if left_out is None else f"without {left_out}"


def members_name(members: tuple[str, ...]) -> str:
    """A Shapley coalition's name: ``"{alice, bob}"``."""
    return "{" + ", ".join(members) + "}"


# ------------------------------------------------------------------ results


class CoalitionResult(BaseModel):
    """One coalition's job and the metric its evaluation revealed to the label party."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    coalition: str = Field(description='"all", "without <party>" or (Shapley) "{<party>, ...}"')
    left_out: str | None = Field(description="the party whose features were excluded (None: every party)")
    members: tuple[str, ...] = Field(description="the parties whose features the model was trained on")
    features: dict[str, list[str]] = Field(description="party -> feature columns the model was trained on")
    job_id: str | None = Field(description="the coalition's job (None: no feature, so no model and no job)")
    manifest_hash: str | None
    metric: float | None = Field(description="the revealed metric (None: no job; its value is the baseline)")
    seconds: float


class LeaveOneOutMeasurement(BaseModel):
    """The coalitions' metrics and the contribution inputs they make (leave-one-out or Shapley)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = "leave_one_out"
    metric: str
    higher_is_better: bool
    evaluation_algorithm: str
    training_algorithm: str
    label_party: str
    parties: dict[str, str] = Field(description="party name -> member address, in manifest order")
    coalitions: tuple[CoalitionResult, ...]
    baseline: float | None = Field(
        default=None, description="Shapley: the metric of a model without features"
    )

    @property
    def full(self) -> CoalitionResult:
        return next(c for c in self.coalitions if set(c.members) == set(self.parties) and c.left_out is None)

    def without(self, party: str) -> CoalitionResult:
        return next(c for c in self.coalitions if c.left_out == party)

    def inputs_document(self) -> dict[str, Any]:
        """The JSON document of ``LeaveOneOutInputs`` or ``ShapleyInputs`` (what `settle propose` reads),
        each coalition named by its job id (the evidence `settle propose` checks on chain)."""
        if self.method == "shapley":
            return {
                "method": "shapley",
                "metric": self.metric,
                "higher_is_better": self.higher_is_better,
                "baseline": self.baseline,
                "label_party": self.parties[self.label_party],
                "parties": list(self.parties.values()),
                "coalitions": [
                    {"parties": [self.parties[m] for m in c.members], "metric": c.metric, "job_id": c.job_id}
                    for c in self.coalitions
                ],
            }
        return {
            "method": "leave_one_out",
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "full": self.full.metric,
            "full_job": self.full.job_id,
            "parties": [
                {"party": address, "without": self.without(name).metric, "job_id": self.without(name).job_id}
                for name, address in self.parties.items()
            ],
        }

    def to_inputs(self) -> LeaveOneOutInputs | ShapleyInputs:
        """``LeaveOneOutInputs`` or ``ShapleyInputs``, ready for ``compute_weights`` and the contribution
        record."""
        if self.method == "shapley":
            return ShapleyInputs.model_validate(self.inputs_document())
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
    """What is run for one coalition (``manifest`` None: its parties bring no feature, nothing runs)."""

    name: str
    left_out: str | None
    members: tuple[str, ...]
    features: dict[str, list[str]]
    manifest: JobManifest | None


@dataclass(frozen=True)
class CoalitionJob:
    """The on-chain identity of a coalition's job, chosen before it runs, so that every party's node can
    consent to it and the job be opened on chain first (`measure_leave_one_out`'s ``open_job``)."""

    coalition: str
    manifest: JobManifest
    job_id: str
    salt: str
    job_secret: str
    creator: str
    manifest_hash: str


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
    method: Method = "leave_one_out"


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
    manifest: JobManifest | Mapping[str, Any] | str | bytes,
    metric: str | None = None,
    method: Method = "leave_one_out",
) -> JobManifest:
    """The checks that need no party metadata (structure, evaluation -> prediction -> training, metric,
    the method's limits); returns the parsed manifest. `measure_leave_one_out` runs them too; call it
    first to fail fast."""
    if not isinstance(manifest, JobManifest):
        manifest = JobManifest.parse(manifest)
    check_structure(manifest)
    _, _, _, chosen, _ = _find_chain(manifest, metric)
    _check_method(manifest, chosen, method)
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
    tag: str,
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
    document["name"] = f"{manifest.name} [{tag}]"[:128]
    document["steps"] = steps
    document["datasets"] = {k: v for k, v in manifest.datasets.items() if k in used}
    document["models"] = {k: v for k, v in manifest.models.items() if k in used}
    return JobManifest.parse(document)


def _check_method(manifest: JobManifest, metric: str, method: Method) -> None:
    if method not in METHODS:
        raise ContributionManifestError(
            f"unknown method {method!r}", hint=f"choose one of {', '.join(METHODS)}"
        )
    if method != "shapley":
        return
    if len(manifest.parties) > MAX_SHAPLEY_PARTIES:
        raise ContributionManifestError(
            f"exact Shapley values need 2^(N-1) coalition jobs: at most {MAX_SHAPLEY_PARTIES} parties, not "
            f"{len(manifest.parties)}",
            hint="use --method leave_one_out for more parties",
        )
    if metric not in BASELINES:
        raise ContributionManifestError(
            f"Shapley values need the metric of a model without features, which is not defined for {metric}",
            hint=f"choose one of {', '.join(BASELINES)} (--metric)",
        )


def _coalition_members(
    parties: Sequence[str], label_party: str, method: Method
) -> list[tuple[str | None, tuple[str, ...]]]:
    """(left out, members) of each coalition: every party first, then (leave-one-out) every party but one,
    or (Shapley) every other set of parties that holds the label party, largest first."""
    if method == "leave_one_out":
        return [(None, tuple(parties))] + [(p, tuple(q for q in parties if q != p)) for p in parties]
    others = [p for p in parties if p != label_party]
    out: list[tuple[str | None, tuple[str, ...]]] = []
    for size in range(len(others), -1, -1):
        for subset in combinations(others, size):
            out.append((None, tuple(p for p in parties if p == label_party or p in subset)))
    return out


def plan_leave_one_out(
    manifest: JobManifest,
    infos: Mapping[str, ObjectInfo],
    model_infos: Mapping[str, ObjectInfo] | None = None,
    *,
    metric: str | None = None,
    method: Method = "leave_one_out",
) -> LeaveOneOutPlan:
    """Build and validate every coalition's manifest on metadata (``infos``: the datasets' columns per
    party). Raises a `ContributionManifestError` (or the manifest's own `ComputeError`) before any
    compute."""
    check_structure(manifest)
    ev, _, train, chosen, higher = _find_chain(manifest, metric)
    _check_method(manifest, chosen, method)
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
    for left_out, members in _coalition_members(parties, label_party, method):
        name = coalition_name(left_out) if method == "leave_one_out" else members_name(members)
        if method == "shapley" and len(members) == len(parties):
            name = ALL
        features = {p: cols for p, cols in by_party.items() if p in members and cols}
        flat = [c for cols in features.values() for c in cols]
        if not flat and method == "shapley" and len(members) < len(parties):
            # no feature: no model to train; the coalition's value is the baseline (nothing runs)
            coalitions.append(CoalitionPlan(name, None, members, {}, None))
            continue
        if not flat and left_out is not None:
            raise NoFeaturesLeftError(
                f"without party {left_out!r} the training step (step {train}, {train_alg}) has no feature "
                f"left: every feature it selects is {left_out!r}'s"
            )
        if not flat:
            raise NoFeaturesLeftError(f"the training step (step {train}, {train_alg}) selects no feature")
        tag = f"leave-one-out: {name}" if method == "leave_one_out" else f"shapley: {name}"
        coalition = _coalition_manifest(manifest, keep, train, ev, flat, owner, tag)
        try:
            plan_job(coalition, infos, model_infos, job_secret=new_job_secret())
        except ComputeError as exc:
            raise type(exc)(f"the coalition {name!r} is not a valid job: {exc.args[0]}") from None
        coalitions.append(CoalitionPlan(name, left_out, members, features, coalition))
    return LeaveOneOutPlan(
        metric=chosen,
        higher_is_better=higher,
        evaluation_algorithm=manifest.steps[ev].algorithm,
        evaluation_output=_report_name(manifest, ev),
        training_algorithm=train_alg,
        label_party=label_party,
        owner=owner,
        coalitions=tuple(coalitions),
        method=method,
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
    method: Method = "leave_one_out",
    open_job: Callable[[CoalitionJob], None] | None = None,
) -> LeaveOneOutMeasurement:
    """Run every coalition of ``manifest`` as a job on ``engine``, recorded through ``recorder``, and
    return their metrics. Validates all coalitions before the first one runs. A manifest that uses stored
    models needs ``model_anchors`` (see `secureflow.compute.runner.run_job`).

    ``method``: ``leave_one_out`` (every party, then every party but one) or ``shapley`` (every set of
    parties that holds the label party; at most 4 parties; a set that brings no feature runs nothing).
    ``open_job``: called with each coalition job's identity (id, salt, job secret, creator) before it
    runs, to open it on chain with every party's consent (`secureflow settle measure` asks each party's
    node); a coalition whose opening raises does not run."""
    manifest = check_manifest(manifest, metric, method)  # the cheap checks first: no worker round trip
    infos, model_infos = _metadata(engine, manifest)
    plan = plan_leave_one_out(manifest, infos, model_infos, metric=metric, method=method)
    report = progress or (lambda _: None)
    runs = [c for c in plan.coalitions if c.manifest is not None]
    total = len(runs)
    steps = len(runs[0].manifest.steps) if runs[0].manifest is not None else 0
    results: list[CoalitionResult] = [
        CoalitionResult(
            coalition=c.name,
            left_out=c.left_out,
            members=c.members,
            features={},
            job_id=None,
            manifest_hash=None,
            metric=None,
            seconds=0.0,
        )
        for c in plan.coalitions
        if c.manifest is None
    ]
    creator = creator or manifest.address_of(manifest.party_names()[0])
    for index, coalition in enumerate(runs):
        name = coalition.name
        assert coalition.manifest is not None  # noqa: S101 - runs holds the coalitions with a manifest
        job_secret, salt = new_job_secret(), new_job_salt()
        m_hash = coalition.manifest.manifest_hash(job_secret)
        job_id = job_id_for(creator, m_hash, salt)
        if open_job is not None:
            open_job(CoalitionJob(name, coalition.manifest, job_id, salt, job_secret, creator, m_hash))
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
                job_id=job_id,
                salt=salt,
                creator=creator,
                job_secret=job_secret,
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
                members=coalition.members,
                features={p: list(c) for p, c in coalition.features.items()},
                job_id=result.job_id,
                manifest_hash=result.manifest_hash,
                metric=value,
                seconds=time.monotonic() - t0,
            )
        )
        report(Progress("finished", name, index, total, done[0], steps))
    order = {c.name: i for i, c in enumerate(plan.coalitions)}
    return LeaveOneOutMeasurement(
        method=method,
        baseline=BASELINES[plan.metric] if method == "shapley" else None,
        metric=plan.metric,
        higher_is_better=plan.higher_is_better,
        evaluation_algorithm=plan.evaluation_algorithm,
        training_algorithm=plan.training_algorithm,
        label_party=plan.label_party,
        parties={p.name: p.address for p in manifest.parties},
        coalitions=tuple(sorted(results, key=lambda c: order[c.coalition])),
    )
