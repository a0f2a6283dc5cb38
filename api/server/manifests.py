"""Validating a submitted job manifest with the compute engine's manifest model (``compute.manifest``).

The compute package is imported on first use (its algorithm registry takes a
few seconds to load). If it cannot be imported at all, a minimal structural
check (parties with addresses, at least one step) is applied instead, and the
compute engine re-validates the manifest when the job runs.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from secureflow.api.server.errors import InvalidRequestError
from secureflow.ledger.records import Address, canonical_hash

log = logging.getLogger("secureflow.api.server.manifests")


@dataclass(frozen=True)
class ValidManifest:
    manifest: dict[str, Any]
    manifest_hash: str
    parties: list[str]


class _Party(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=32)
    address: Address


class _MinimalManifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    parties: list[_Party] = Field(min_length=1, max_length=32)
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=256)


def _first_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(manifest)'}: {e['msg']}" for e in exc.errors()[:3]
    )


def validate_manifest(raw: dict[str, Any]) -> ValidManifest:
    """The normalised manifest, its hash and party addresses; `InvalidRequestError` saying what is wrong."""
    try:
        from secureflow.compute.errors import ComputeError
        from secureflow.compute.manifest import JobManifest, check_structure
    except ImportError as exc:  # compute not installed: structural check only
        log.warning("compute manifest model not importable", extra={"error": type(exc).__name__})
        try:
            minimal = _MinimalManifest.model_validate(raw)
        except ValidationError as err:
            raise InvalidRequestError(f"invalid manifest: {_first_errors(err)}") from None
        normalised = minimal.model_dump(mode="json")
        digest = canonical_hash(normalised)
        return ValidManifest(normalised, digest, [p.address for p in minimal.parties])
    try:
        manifest = JobManifest.parse(raw)
        check_structure(manifest)
    except ComputeError as exc:
        hint = getattr(exc, "hint", "") or "fix the manifest (see `secureflow algorithms` for the algorithms)"
        raise InvalidRequestError(
            f"invalid manifest: {exc.args[0] if exc.args else exc}", hint=hint
        ) from None
    return ValidManifest(
        manifest.model_dump(mode="json"), manifest.manifest_hash(), [p.address for p in manifest.parties]
    )


def new_job_id(manifest_hash: str) -> str:
    """A fresh job id: keccak256(manifest hash || 16 random bytes), as the compute runner makes them."""
    return "0x" + keccak(bytes.fromhex(manifest_hash[2:]) + secrets.token_bytes(16)).hex()
