"""Validating a submitted job manifest with the compute engine's manifest model (``compute.manifest``).

The compute package is imported on first use (its algorithm registry takes a
few seconds to load). It is part of the same distribution: there is no second,
weaker check whose manifest hash could differ from the engine's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from secureflow.api.server.errors import InvalidRequestError


@dataclass(frozen=True)
class ValidManifest:
    manifest: dict[str, Any]
    manifest_hash: str
    parties: list[str]


def validate_manifest(raw: dict[str, Any]) -> ValidManifest:
    """The normalised manifest, its hash and party addresses; `InvalidRequestError` saying what is wrong."""
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
    return ValidManifest(
        manifest.model_dump(mode="json"), manifest.manifest_hash(), [p.address for p in manifest.parties]
    )


def new_job_id(manifest_hash: str) -> str:
    """A fresh job id: keccak256(manifest hash || 16 random bytes), as the compute runner makes them."""
    return "0x" + keccak(bytes.fromhex(manifest_hash[2:]) + secrets.token_bytes(16)).hex()
