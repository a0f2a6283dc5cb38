"""The job runner: validate a manifest, run its steps on the party workers, record every step.

`run_job(engine, manifest, recorder)`:

1. parses the manifest and checks its structure (algorithms, parameters, references);
2. makes sure the workers are up and that each manifest party's address is its
   worker's member key;
3. asks each worker for the metadata of its own datasets (column names and
   kinds) and models, and validates every step on that metadata (`plan_job`):
   nothing runs if any step is invalid;
   stored models are verified before they are loaded: the coordinator reads each
   model's anchored hash (``model_anchors``) and every party re-hashes its own
   share files and checks its metadata against it (nothing is loaded otherwise);
4. opens the job on the ledger (`LedgerRecorder.open_job` with the manifest hash, the manifest's
   commitment under the job secret; each step's ``params_hash`` is salted with it too);
5. runs the steps in order (SPMD: every worker runs the same step), builds the
   `StepRecord` from each party's salted digests, has each party sign its part,
   and hands it to `LedgerRecorder.record_step`; a trained model's metadata
   (with its hash and version) is written next to each party's shares and, when
   the recorder has ``record_model``, anchored;
6. on a failed step records it as failed with only its error class, closes the
   job as failed and stops (workers left unusable are shut down, and restarted
   by the next job).

The runner holds no party data: only metadata, digests, signatures and the
reports that the algorithm reveals to the parties (kept in `JobResult`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from secureflow.compute.errors import (
    ComputeError,
    ManifestError,
    ModelError,
    ModelNotAnchoredError,
    SchemaError,
    WorkerError,
)
from secureflow.compute.manifest import JobManifest, PlannedStep, check_structure, code_version, plan_job
from secureflow.compute.models import anchor_key, check_anchored, describe, model_hash, model_id_for
from secureflow.compute.schema import ObjectInfo
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.records import PartyDigests, StepRecord, job_id_for, new_job_salt, new_job_secret

if TYPE_CHECKING:
    from secureflow.ledger.recorder import ModelAnchors

log = logging.getLogger("secureflow.compute.runner")


class Recorder(Protocol):
    """The subset of `secureflow.ledger.recorder.LedgerRecorder` the runner uses."""

    def open_job(
        self, job_id: str, manifest_hash: str, creator: str, parties: Any, *, salt: str | None = None
    ) -> None: ...

    def record_step(self, record: StepRecord) -> Any: ...

    def close_job(self, job_id: str, *, succeeded: bool, reason: str | None = None) -> None: ...


@dataclass
class StepOutcome:
    seq: int
    algorithm: str
    record: StepRecord
    seconds: float
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # party -> output name -> report
    error_message: str | None = None


@dataclass
class JobResult:
    job_id: str
    manifest_hash: str
    succeeded: bool
    steps: list[StepOutcome]
    models: list[dict[str, Any]]
    seconds: float
    anchoring_seconds: float
    error_class: str | None = None
    error_message: str | None = None
    job_secret: str | None = field(
        default=None, repr=False
    )  # the commitments' salt: parties and auditor only

    def report(self, output_name: str, party: str) -> dict[str, Any] | None:
        for step in self.steps:
            if output_name in step.reports.get(party, {}):
                found: dict[str, Any] = step.reports[party][output_name]
                return found
        return None


MAX_REASON_MESSAGE = 1000
"""Characters of a failed step's message kept in its job's reason (the rest is cut)."""


def failed_step_reason(seq: int, algorithm: str, error_class: str, message: str) -> str:
    """Why a job failed at step ``seq``, for its ``reason``: the step, its error class and message.

    The message is the party worker's (a `ComputeError`'s message names columns, parties, steps and
    parameters, never cell values; any other exception is reported by its class name only), on one
    line and cut to `MAX_REASON_MESSAGE` characters. The step record itself anchors only the class."""
    line = " ".join(message.split())
    if len(line) > MAX_REASON_MESSAGE:
        line = line[: MAX_REASON_MESSAGE - 1] + "…"
    return f"step {seq} ({algorithm}) failed: {error_class}" + (f": {line}" if line else "")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _merge_infos(replies: Mapping[str, Mapping[str, Any]], parties: tuple[str, ...]) -> dict[str, ObjectInfo]:
    infos: dict[str, ObjectInfo] = {}
    for party in parties:
        for name, raw in replies[party].get("infos", {}).items():
            info = ObjectInfo.model_validate(raw)
            if name in infos:
                infos[name].columns.update(info.columns)
            else:
                infos[name] = info
    for info in infos.values():
        info.columns = {p: info.columns[p] for p in parties if p in info.columns}
    return infos


def _model_infos(
    manifest: JobManifest, replies: Mapping[str, Mapping[str, Any]], parties: tuple[str, ...]
) -> dict[str, ObjectInfo]:
    out: dict[str, ObjectInfo] = {}
    for name, model_id in manifest.models.items():
        metas = [replies[p]["models"][name]["meta"] for p in parties]
        hashes = {m.get("model_hash") for m in metas}
        if len(hashes) != 1:
            raise ModelError(f"the parties hold different versions of model {model_id!r}")
        meta = metas[0]
        addresses = {manifest.address_of(p).lower() for p in parties}
        trained_by = {a.lower() for a in meta.get("share_digests", {})}
        if trained_by != addresses:
            raise ModelError(f"model {model_id!r} was trained by other parties than this job's")
        out[name] = ObjectInfo(kind="model", columns=meta["features"], meta=meta["info_meta"])
    return out


def check_engine_parties(engine: Engine, manifest: JobManifest) -> None:
    """The manifest's parties must be the engine's, each with its worker's member address, under the
    engine's SPU protocol; workers healthy."""
    parties = manifest.party_names()
    if set(parties) != set(engine.parties):
        raise ManifestError(
            f"the manifest's parties {sorted(parties)} are not the engine's {sorted(engine.parties)}"
        )
    if manifest.spu_protocol != engine.spu_protocol:
        raise ManifestError(
            f"the manifest's SPU protocol is {manifest.spu_protocol} but this engine's parties run "
            f"{engine.spu_protocol}",
            hint=f"submit it where the parties run {manifest.spu_protocol} (the consortium's nodes start "
            "each job's SPU from its manifest), or set spu_protocol to " + engine.spu_protocol,
        )
    engine.ensure_healthy()
    for p in parties:
        if engine.addresses[p].lower() != manifest.address_of(p).lower():
            raise ManifestError(
                f"party {p!r} has address {manifest.address_of(p)} in the manifest but its worker's "
                f"member key is {engine.addresses[p]}",
                hint="put each party's member address (Engine.addresses) into the manifest",
            )


def open_on_workers(engine: Engine, manifest: JobManifest, job_id: str) -> dict[str, dict[str, Any]]:
    """Open ``job_id`` on every party worker with its own datasets and the manifest's models; the replies."""
    return engine.broadcast(
        {
            p: {
                "op": "open_job",
                "job_id": job_id,
                "datasets": {n: per[p] for n, per in manifest.datasets.items() if p in per},
                "models": dict(manifest.models),
            }
            for p in manifest.party_names()
        },
        timeout=600.0,
        what="open_job",
    )


def run_job(
    engine: Engine,
    manifest: JobManifest | Mapping[str, Any] | str,
    recorder: Recorder,
    *,
    job_id: str | None = None,
    salt: str | None = None,
    creator: str | None = None,
    reveal_reports: bool = True,
    model_anchors: ModelAnchors | None = None,
    job_secret: str | None = None,
    should_stop: Callable[[], str | None] | None = None,
) -> JobResult:
    """Run ``manifest`` on ``engine``'s party workers, recording each step through ``recorder``.

    A manifest that uses stored models (``models``) needs ``model_anchors``, the on-chain lookup of model
    hashes (`secureflow.ledger.model_anchors.ChainModelAnchors`): before anything is loaded, each party
    re-hashes its own share files and checks the metadata hash against the anchored one
    (`ModelIntegrityError`; `ModelNotAnchoredError` for a model without an anchored hash, or no lookup).

    Without ``job_id`` the job's id is ``job_id_for(creator, manifest hash, salt)`` (a fresh salt unless
    one is given), the id the AuditLedger gives the job when ``creator`` creates it with that salt; a
    given ``job_id`` must match its ``salt``, if any. The salt goes to ``recorder.open_job``.

    ``job_secret`` (``0x`` + 64 hex; a fresh one unless given, returned in `JobResult.job_secret`) salts
    the manifest hash and every step's ``params_hash`` (`secureflow.ledger.records.commitment`): give the
    one the job was submitted and created with, since the manifest hash is part of the job id.

    ``should_stop`` is asked before each step: a reason (the job was cancelled) ends the job there,
    failed with that reason (``error_class`` ``JobStopped``), after the steps recorded so far.
    """
    t_job = time.monotonic()
    if not isinstance(manifest, JobManifest):
        manifest = JobManifest.parse(manifest)
    check_structure(manifest)
    parties = manifest.party_names()
    check_engine_parties(engine, manifest)
    job_secret = job_secret or new_job_secret()
    m_hash = manifest.manifest_hash(job_secret)
    creator = creator or manifest.address_of(parties[0])
    if job_id is None:
        salt = salt or new_job_salt()
        job_id = job_id_for(creator, m_hash, salt)
    elif salt is not None and job_id.lower() != job_id_for(creator, m_hash, salt):
        raise ManifestError(
            f"job id {job_id} is not the id of this manifest (under its job secret) created by {creator} "
            f"with salt {salt}",
            hint="derive the job id with secureflow.ledger.records.job_id_for(creator, manifest_hash, salt) "
            "from JobManifest.manifest_hash(job_secret), and pass run_job the same job_secret",
        )

    opened = open_on_workers(engine, manifest, job_id)
    try:
        for p in parties:
            if not opened[p].get("ok"):
                raise _error_from_reply(opened[p])
        infos = _merge_infos(opened, parties)
        model_infos = _model_infos(manifest, opened, parties)
        plan = plan_job(manifest, infos, model_infos, job_secret=job_secret)
        if manifest.models:
            _verify_models(engine, manifest, job_id, opened, parties, model_anchors)
            loaded = engine.all(
                {
                    "op": "load_models",
                    "job_id": job_id,
                    "models": dict(manifest.models),
                    "infos": {n: i.model_dump() for n, i in model_infos.items()},
                },
                what="load_models",
            )
            for p in parties:
                if not loaded[p].get("ok"):
                    engine.healthy = False
                    raise _error_from_reply(loaded[p])
    except BaseException:
        _close_workers(engine, job_id)
        raise

    addresses = [manifest.address_of(p) for p in parties]
    recorder.open_job(job_id, m_hash, creator, addresses, salt=salt)
    outcomes: list[StepOutcome] = []
    models: list[dict[str, Any]] = []
    anchoring = 0.0
    failure: tuple[str, str] | None = None
    reason: str | None = None
    for step in plan:
        why = None if should_stop is None else should_stop()
        if why is not None:
            failure, reason = ("JobStopped", why), f"stopped before step {step.seq}: {why}"
            break
        outcome, step_models, spent = _run_step(engine, manifest, recorder, job_id, step, reveal_reports)
        anchoring += spent
        outcomes.append(outcome)
        models.extend(step_models)
        if outcome.record.status == "failed":
            failure = (outcome.record.error_class or "ComputeError", outcome.error_message or "")
            reason = failed_step_reason(step.seq, step.spec.name, *failure)
            break
    _close_workers(engine, job_id)
    t = time.monotonic()
    recorder.close_job(job_id, succeeded=failure is None, reason=reason)
    anchoring += time.monotonic() - t
    return JobResult(
        job_id=job_id,
        manifest_hash=m_hash,
        succeeded=failure is None,
        steps=outcomes,
        models=models,
        seconds=time.monotonic() - t_job,
        anchoring_seconds=anchoring,
        error_class=None if failure is None else failure[0],
        error_message=None if failure is None else failure[1],
        job_secret=job_secret,
    )


def _verify_models(
    engine: Engine,
    manifest: JobManifest,
    job_id: str,
    opened: Mapping[str, Mapping[str, Any]],
    parties: tuple[str, ...],
    model_anchors: ModelAnchors | None,
) -> None:
    """Read each model's anchored hash, then have every party check its own shares and the metadata."""
    anchored: dict[str, str | None] = {}
    for name in manifest.models:
        meta = opened[parties[0]]["models"][name]["meta"]  # every party's has the same hash (_model_infos)
        job, model_id, version = anchor_key(meta)
        if model_anchors is None:
            raise ModelNotAnchoredError(
                f"{describe(meta)}: no on-chain lookup was given to the runner, so its anchored hash cannot "
                "be checked; refusing to trust its files"
            )
        anchored[name] = found = model_anchors.anchored_model_hash(job, model_id, version)
        check_anchored(meta, found)  # the coordinator refuses too: nothing reaches the workers unanchored
    replies = engine.all(
        {"op": "verify_models", "job_id": job_id, "models": dict(manifest.models), "anchored": anchored},
        timeout=300.0,
        what="verify_models",
    )
    for p in parties:  # no party loaded anything: the workers stay in step
        if not replies[p].get("ok"):
            raise _error_from_reply(replies[p])


def _error_from_reply(reply: Mapping[str, Any]) -> ComputeError:
    import secureflow.compute.errors as errors

    cls = getattr(errors, str(reply.get("error_class")), None)
    if not (isinstance(cls, type) and issubclass(cls, ComputeError)):
        cls = ComputeError
    return cls(str(reply.get("message", "party worker error")))


def _close_workers(engine: Engine, job_id: str) -> None:
    if not engine.healthy:
        engine.shutdown()  # a worker died, hung or failed inside SecretFlow: restart on the next job
        return
    try:
        engine.all({"op": "close_job", "job_id": job_id}, timeout=60.0, what="close_job")
    except WorkerError:
        engine.shutdown()


def _run_step(
    engine: Engine,
    manifest: JobManifest,
    recorder: Recorder,
    job_id: str,
    step: PlannedStep,
    reveal_reports: bool,
) -> tuple[StepOutcome, list[dict[str, Any]], float]:
    parties = manifest.party_names()
    t0 = time.monotonic()
    started = _now_ms()
    msg = {
        "op": "run_step",
        "job_id": job_id,
        "seq": step.seq,
        "algorithm": step.spec.name,
        "params": step.params_json(),
        "inputs": step.inputs,
        "outputs": step.outputs,
        "input_infos": {s: i.model_dump() for s, i in step.input_infos.items()},
        "output_infos": {s: i.model_dump() for s, i in step.output_infos.items()},
        "reveal_reports": reveal_reports,
        "save": dict(step.step.save),
    }
    replies: dict[str, dict[str, Any]] = {}
    error_class: str | None = None
    error_message: str | None = None
    can_sign = True
    try:
        replies = engine.all(
            msg, what=f"step {step.seq} ({step.spec.name})", failure_grace=engine.failure_grace
        )
    except WorkerError as exc:
        error_class, error_message, can_sign = exc.error_class, str(exc), False
        for p in parties:  # a party that failed first names the cause; the others were stuck waiting
            r = (exc.replies or {}).get(p)
            if r is not None and not r.get("ok"):
                error_class = str(r.get("error_class") or error_class)
                error_message = f"{r.get('message', '')}; {exc}"
                break
    if error_class is None:
        failed = [p for p in parties if not replies[p].get("ok")]
        if failed:
            first = replies[failed[0]]
            error_class = str(first.get("error_class") or "StepExecutionError")
            error_message = str(first.get("message", ""))
            # a party that failed alone, or inside SecretFlow, leaves the cluster out of step: restart it
            if len(failed) != len(parties) or any(replies[p].get("fatal") for p in failed):
                engine.healthy = False
    finished = max(_now_ms(), started)
    digests = []
    for p in parties:
        r = replies.get(p, {})
        ok = error_class is None
        digests.append(
            PartyDigests(
                party=manifest.address_of(p),
                inputs=dict(r.get("inputs", {})) if ok else {},
                outputs=dict(r.get("outputs", {})) if ok else {},
            )
        )
    record = StepRecord(
        job_id=job_id,
        seq=step.seq,
        algorithm=step.spec.name,
        params_hash=step.params_hash,
        code_version=code_version(),
        parties=tuple(digests),
        status="succeeded" if error_class is None else "failed",
        error_class=error_class,
        started_at_ms=started,
        finished_at_ms=finished,
    )
    if can_sign:
        try:
            signed = engine.all(
                {"op": "sign", "record": record.model_dump_json()},
                timeout=60.0,
                what="sign",
            )
            record = record.model_copy(
                update={
                    "parties": tuple(
                        d.model_copy(update={"signature": signed[p].get("signature")})
                        for p, d in zip(parties, digests, strict=True)
                    )
                }
            )
            record = StepRecord.model_validate(record.model_dump())
        except WorkerError:
            pass
    step_models: list[dict[str, Any]] = []
    if record.status == "succeeded":
        step_models = _finish_models(engine, manifest, job_id, step, record)
    log.info(
        "job %s step %d %s %s in %.2fs%s",
        job_id[:10],
        step.seq,
        step.spec.name,
        record.status,
        time.monotonic() - t0,
        f" ({record.error_class})" if record.error_class else "",
    )
    t_rec = time.monotonic()
    recorder.record_step(record)
    for meta in step_models:
        if hasattr(recorder, "record_model"):
            recorder.record_model(job_id, meta["model_id"], meta["version"], meta["model_hash"])
    spent = time.monotonic() - t_rec
    reports = {p: dict(replies[p].get("reports", {})) for p in parties if replies.get(p, {}).get("reports")}
    outcome = StepOutcome(
        seq=step.seq,
        algorithm=step.spec.name,
        record=record,
        seconds=time.monotonic() - t0,
        reports=reports,
        error_message=error_message,
    )
    return outcome, step_models, spent


def _finish_models(
    engine: Engine, manifest: JobManifest, job_id: str, step: PlannedStep, record: StepRecord
) -> list[dict[str, Any]]:
    parties = manifest.party_names()
    out = []
    for slot, name in step.outputs.items():
        info = step.output_infos[slot]
        if info.kind != "model":
            continue
        model_id = model_id_for(job_id, step.seq, name)
        # The audit ledger numbers versions per model id, and a model id is unique to the job step
        # that trained it, so every model starts (and stays) at version 1 on chain; a model trained
        # again by a later job is a new model id with its own lineage, not version 2 of this one.
        version = 1
        profile = step.spec.spu or "default"
        meta: dict[str, Any] = {
            "model_id": model_id,
            "name": name,
            "version": version,
            "algorithm": step.spec.name,
            "params": step.params_json(),
            "params_hash": step.params_hash,
            "features": info.columns,
            "info_meta": info.meta,
            "spu_profile": profile,
            "spu_runtime_config": engine.spu_profiles[profile],
            "parties": {p: manifest.address_of(p) for p in parties},
            "share_digests": {d.party: d.outputs.get(name) for d in record.parties},
            "lineage": {"job_id": job_id, "seq": step.seq, "record_hash": "0x" + record.record_hash().hex()},
            "code_version": record.code_version,
            "created_at_ms": record.finished_at_ms,
        }
        meta["model_hash"] = model_hash(meta)
        engine.all(
            {"op": "write_model_meta", "model_id": model_id, "meta": meta}, timeout=60.0, what="model meta"
        )
        out.append(meta)
    if any(v is None for m in out for v in m["share_digests"].values()):
        raise SchemaError("a party produced no model share")  # pragma: no cover - guarded by the algorithms
    return out
