"""The exception hierarchy of `compute`: one root (`ComputeError`), each error saying what to do.

Every error carries a ``hint`` (the action that fixes it). Messages name
columns, parties, steps and parameters, never cell values, statistics, model
weights, salts or keys. ``error_class`` is the identifier that goes into a
failed step record (the class name; nothing else about the failure is anchored).
"""

from __future__ import annotations

from typing import Any


class ComputeError(Exception):
    """Root of every error raised by the `compute` package."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        if hint is not None:
            self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} ({self.hint})" if self.hint else message

    @property
    def error_class(self) -> str:
        return type(self).__name__


class ManifestError(ComputeError):
    """The job manifest is invalid (structure, parties, references, parameters)."""

    hint = "fix the manifest; nothing was run"


class UnknownAlgorithmError(ManifestError):
    """A step names an algorithm that is not registered."""

    hint = "run `secureflow algorithms` for the list of registered algorithms"


class ParameterError(ManifestError):
    """A step's parameters do not validate against the algorithm's parameter model."""

    hint = "check the step parameters against the algorithm's JSON schema (`secureflow algorithms --json`)"


class DatasetError(ComputeError):
    """A party's dataset is missing, unreadable or lies outside its data directory."""

    hint = "put the dataset file in that party's data directory and reference it by relative path"


class PolicyError(ComputeError):
    """A party's policy file cannot be read or is not a valid policy."""

    hint = "fix <party_dir>/policy.json (see secureflow.compute.policy for its format) or remove it"


class ConsentRefusedError(ComputeError):
    """A party's node refused to consent to a job: the manifest breaks its policy (the reasons say how)."""

    hint = "change the manifest, or the party changes its policy.json, then submit the job again"


class SchemaError(ComputeError):
    """An input table lacks a required column, or a column has the wrong type, or columns clash."""

    hint = "check the column names and types the step expects against the parties' tables"


class EmptyResultError(ComputeError):
    """A step produced no rows where rows are required (e.g. an empty PSI intersection)."""

    hint = "check that the parties' key columns hold overlapping identifiers"


class StepExecutionError(ComputeError):
    """SecretFlow raised while running a step (the party workers were restarted)."""

    hint = "see the party worker logs under the engine's party directories"


class NodeRefusedError(ComputeError):
    """A party's node refused a request: its job is not open on chain with this member's consent, or the
    session's parties are not the job's on-chain parties."""

    hint = "open the job on chain with every party's consent (the API does) and run it on exactly its parties"


class WorkerError(ComputeError):
    """A party worker could not start, died, or did not answer in time."""

    hint = "check the party worker log; the engine restarts the workers before the next job"
    #: the replies that did arrive before the failure (party -> reply), if any
    replies: dict[str, dict[str, Any]] | None = None


class WorkerTimeoutError(WorkerError):
    """A party worker did not answer within the timeout."""

    hint = "raise the step timeout for large data, or check the party worker log for a stuck step"


class ModelError(ComputeError):
    """A model cannot be saved, found or loaded (missing shares, mismatched SPU runtime config)."""

    hint = "load the model with the SPU runtime configuration and parties it was trained with"


class ModelIntegrityError(ModelError):
    """A stored model differs from what was recorded: a party's share files do not hash to the salted
    digest in its metadata, or the metadata's hash is not the one anchored on chain for that version."""

    hint = (
        "do not use this model: restore the party's model folder from a trusted copy, or train it again; "
        "`secureflow model verify MODEL_ID --data-dir DIR` shows each check"
    )


class ModelNotAnchoredError(ModelIntegrityError):
    """The model's hash is not (yet) anchored on chain for that version, so its files cannot be trusted."""

    hint = (
        "wait until the anchoring worker has recorded the model (`recordModel`) on chain, and give the "
        "runner an on-chain lookup (run_job(..., model_anchors=...)); an unanchored model is never loaded"
    )


class ContributionManifestError(ManifestError):
    """The manifest cannot be measured leave-one-party-out (`secureflow.compute.contribution`)."""

    hint = (
        "give the manifest a training step (ss_lr or ss_xgb), secure_predict to the label party and "
        "biclassification_eval or regression_eval on its scores; nothing was run"
    )


class NoFeaturesLeftError(ContributionManifestError):
    """Leaving a party out leaves the training step without any feature column."""

    hint = (
        "select at least one feature of every party in the training step's features, or settle this job "
        "by data share (method data_share); nothing was run"
    )


class CoalitionFailedError(ComputeError):
    """A coalition's job of a leave-one-party-out measurement failed; no contribution was measured."""

    hint = (
        "see the coalition job's failed step record and the party worker logs, fix the cause and "
        "measure again (the coalitions that ran stay recorded)"
    )
