"""Validating a submitted job manifest with the compute engine's manifest model (``compute.manifest``).

The compute package is imported on first use (its algorithm registry takes a
few seconds to load). It is part of the same distribution: there is no second,
weaker check whose manifest hash could differ from the engine's.

Each submission gets a fresh job secret (`secureflow.ledger.records.new_job_secret`):
the manifest hash is the manifest's commitment under it (and so is every step's
``params_hash``), so the same manifest submitted twice gives unrelated hashes and
job ids. The secret is kept beside the manifest, handed to the executor (the
parties), and put into the job's audit bundle for the auditor; never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from secureflow.api.server.errors import InvalidRequestError
from secureflow.ledger.records import job_id_for, new_job_salt, new_job_secret


@dataclass(frozen=True)
class ValidManifest:
    manifest: dict[str, Any]
    manifest_hash: str
    parties: list[str]
    job_secret: str = field(repr=False)


def validate_manifest(raw: dict[str, Any]) -> ValidManifest:
    """The normalised manifest, a fresh job secret and the manifest's commitment under it (the manifest
    hash), and the party addresses; `InvalidRequestError` saying what is wrong."""
    from secureflow.compute.errors import ComputeError  # the registry loads on first use (a few seconds)
    from secureflow.compute.manifest import JobManifest, check_structure

    try:
        manifest = JobManifest.parse(raw)
        check_structure(manifest)
    except ComputeError as exc:
        hint = getattr(exc, "hint", "") or "fix the manifest (see `secureflow algorithms` for the algorithms)"
        raise InvalidRequestError(
            f"invalid manifest: {exc.args[0] if exc.args else exc}", hint=hint
        ) from None
    job_secret = new_job_secret()
    return ValidManifest(
        manifest.model_dump(mode="json"),
        manifest.manifest_hash(job_secret),
        [p.address for p in manifest.parties],
        job_secret,
    )


def new_job_id(creator: str, manifest_hash: str) -> tuple[str, str]:
    """A fresh job id and its salt: ``job_id_for(creator, manifest_hash, salt)`` with a new random salt.

    The id the AuditLedger gives the job when ``creator`` creates it with that salt (the one rule, in
    ``secureflow.ledger.records``), so nobody who reads the id from the API can create a job under it.
    """
    salt = new_job_salt()
    return job_id_for(creator, manifest_hash, salt), salt
