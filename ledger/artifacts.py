"""The compiled contracts checked in under ``contracts/artifacts`` (read at runtime without node or solc).

``secureflow.ledger.compiler`` regenerates the files from ``contracts/src``; a test
recompiles and fails if they are stale.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from secureflow.ledger._internal.toolchain import PROJECT_ROOT
from secureflow.ledger.errors import ToolchainError

ARTIFACTS_DIR = PROJECT_ROOT / "contracts" / "artifacts"
_CONTRACT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_REGENERATE = (
    "regenerate the artifacts with `python -m secureflow.ledger.compiler` (secureflow contracts compile)"
)


class CompilerInfo(BaseModel):
    """Which compiler built an artifact, and with which settings."""

    model_config = ConfigDict(frozen=True)

    version: str
    settings: dict[str, Any]


class Artifact(BaseModel):
    """One compiled contract: ABI, creation and runtime bytecode (0x-prefixed hex), provenance."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    contract_name: str = Field(alias="contractName")
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str = Field(alias="deployedBytecode")
    compiler: CompilerInfo
    source_hash: str = Field(alias="sourceHash")
    metadata: str = ""

    def to_json(self) -> str:
        """The artifact file's text (stable key order, trailing newline)."""
        return json.dumps(self.model_dump(by_alias=True), indent=2) + "\n"


def artifact_path(name: str, directory: Path | None = None) -> Path:
    """Where the artifact of contract ``name`` is stored."""
    return (directory or ARTIFACTS_DIR) / f"{name}.json"


def _load(path: Path) -> Artifact:
    try:
        return Artifact.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolchainError(f"contract artifact missing: {path}", hint=_REGENERATE) from None
    except ValidationError as error:
        raise ToolchainError(f"contract artifact {path} is malformed: {error}", hint=_REGENERATE) from None


def load_artifact(name: str, directory: Path | None = None) -> Artifact:
    """The checked-in artifact of contract ``name`` (e.g. ``"AuditLedger"``)."""
    if not _CONTRACT_NAME.fullmatch(name):
        raise ToolchainError(f"{name!r} is not a contract name", hint=_REGENERATE)
    return _load(artifact_path(name, directory).resolve())
