"""What a party's worker holds a job to once it consented: exactly the consented steps, data and record.

Consent (`Worker.op_consent`) is given to a manifest: its datasets, its steps with their parameters, who
receives what. Without this check a coordinator (or whoever writes a node's queue) could, once a party
consented to a PSI, ask its worker to open another of its files or run another algorithm with other
parameters under the same job id, and have it sign the record. So, for a job this worker consented to:

* ``open_job`` may name only the manifest's datasets of this party, at the manifest's paths, and its models;
* ``run_step`` of step ``seq`` must be the manifest's step ``seq``: same algorithm, same parameters (as
  the algorithm parses them), same inputs, outputs and saves;
* a record is signed only with the consented algorithm and parameter commitment (``params_hash`` under
  the job secret the consent was given with) and the consented parties, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secureflow.compute.errors import ConsentRefusedError
from secureflow.compute.manifest import JobManifest
from secureflow.compute.registry import get_algorithm
from secureflow.ledger.records import StepRecord, params_hash


@dataclass(frozen=True)
class ConsentedStep:
    algorithm: str
    params: dict[str, Any]  # as the algorithm parses them, JSON mode (what the coordinator sends)
    inputs: dict[str, str]
    outputs: dict[str, str]
    save: dict[str, str]
    params_hash: str


@dataclass(frozen=True)
class ConsentedJob:
    """What this party checked and consented to: the only job whose ``createJob`` it will sign, and the
    only steps, data and records of that job it will run, open and sign."""

    manifest_hash: str
    creator: str
    salt: str
    parties: tuple[str, ...]
    chain_id: int
    ledger: str
    datasets: dict[str, str]  # this party's datasets of the job: name -> path in its data folder
    models: dict[str, str]
    steps: tuple[ConsentedStep, ...]


def consented_steps(manifest: JobManifest, job_secret: str) -> tuple[ConsentedStep, ...]:
    steps = []
    for seq, step in enumerate(manifest.steps):
        spec = get_algorithm(step.algorithm)
        steps.append(
            ConsentedStep(
                algorithm=spec.name,
                params=spec.parse_params(step.params).model_dump(mode="json"),
                inputs=dict(step.inputs),
                outputs={slot: step.outputs.get(slot, f"s{seq}.{slot}") for slot in spec.outputs},
                save=dict(step.save),
                params_hash=params_hash(step.params, job_secret),
            )
        )
    return tuple(steps)


def _refuse(party: str, job_id: str, what: str) -> ConsentRefusedError:
    return ConsentRefusedError(
        f"party {party!r} did not consent to this for job {job_id}: {what}; refusing",
        hint="run a job only as its manifest says; a changed job needs a new manifest and new consents",
    )


def check_open_job(job: ConsentedJob, party: str, job_id: str, msg: dict[str, Any]) -> None:
    datasets = dict(msg.get("datasets", {}))
    for name, rel in datasets.items():
        if job.datasets.get(name) != rel:
            raise _refuse(party, job_id, f"dataset {name!r} is not one of this party's datasets of the job")
    models = dict(msg.get("models", {}))
    for name, model_id in models.items():
        if job.models.get(name) != model_id:
            raise _refuse(party, job_id, f"model {name!r} is not a model of the job")


def check_step(job: ConsentedJob, party: str, job_id: str, msg: dict[str, Any]) -> None:
    seq = int(msg["seq"])
    if not 0 <= seq < len(job.steps):
        raise _refuse(party, job_id, f"the job has no step {seq}")
    want = job.steps[seq]
    sent = {
        "algorithm": msg.get("algorithm"),
        "params": msg.get("params"),
        "inputs": dict(msg.get("inputs", {})),
        "outputs": dict(msg.get("outputs", {})),
        "save": dict(msg.get("save", {})),
    }
    for field, value in sent.items():
        if value != getattr(want, field):
            raise _refuse(party, job_id, f"step {seq} differs from the consented step in its {field}")


def check_record(job: ConsentedJob, party: str, record: StepRecord) -> None:
    seq = record.seq
    if not 0 <= seq < len(job.steps):
        raise _refuse(party, record.job_id, f"the job has no step {seq}")
    want = job.steps[seq]
    if (record.algorithm, record.params_hash) != (want.algorithm, want.params_hash):
        raise _refuse(party, record.job_id, f"the record of step {seq} names another algorithm or parameters")
    if [p.party.lower() for p in record.parties] != [p.lower() for p in job.parties]:
        raise _refuse(party, record.job_id, f"the record of step {seq} names other parties")
