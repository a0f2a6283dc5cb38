"""Compile ``contracts/src`` with the pinned solcjs (through py-solc-x and the solc shim) into artifacts.

Settings are fixed for Quorum/Besu: ``evmVersion: berlin``, optimizer on with
200 runs, solc 0.8.30. Every contract defined in ``contracts/src`` gets a
``contracts/artifacts/<Name>.json`` (OpenZeppelin's contracts do not).
Compilation is deterministic: recompiling unchanged sources gives
byte-identical artifacts. Run ``python -m secureflow.ledger.compiler`` to regenerate them,
``python -m secureflow.ledger.compiler --check`` to fail when they are stale.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import solcx
from solcx.exceptions import SolcError
from solcx.wrapper import get_version_str_from_solc_binary

from secureflow.ledger._internal.toolchain import PROJECT_ROOT, node_executable, solcjs_module
from secureflow.ledger.artifacts import ARTIFACTS_DIR, Artifact, CompilerInfo, artifact_path
from secureflow.ledger.errors import CompilationError, ToolchainError

SOURCES_DIR = PROJECT_ROOT / "contracts" / "src"
SOLC_VERSION = "0.8.30"
COMPILER_SETTINGS: dict[str, Any] = {
    "evmVersion": "berlin",
    "optimizer": {"enabled": True, "runs": 200},
}
_OUTPUTS = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]


def solc_shim() -> Path:
    """The executable that answers like a native solc over solcjs (``ledger/_internal/solc-shim``)."""
    shim = Path(__file__).resolve().parent / "_internal" / "solc-shim"
    if not shim.is_file() or not os.access(shim, os.X_OK):
        raise ToolchainError(f"solc shim missing or not executable: {shim}", hint=f"chmod +x {shim}")
    return shim


def source_files(directory: Path | None = None) -> dict[str, str]:
    """The Solidity sources by source unit name (``contracts/src/<File>.sol``), sorted."""
    folder = directory or SOURCES_DIR
    files = sorted(folder.glob("*.sol"))
    if not files:
        raise CompilationError(f"no Solidity sources in {folder}")
    return {f"contracts/src/{path.name}": path.read_text(encoding="utf-8") for path in files}


def source_hash(sources: dict[str, str]) -> str:
    """sha256 over the source unit names and contents, in name order."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    return digest.hexdigest()


def standard_input(sources: dict[str, str]) -> dict[str, Any]:
    """The solc standard-JSON input for ``sources``."""
    return {
        "language": "Solidity",
        "sources": {name: {"content": content} for name, content in sources.items()},
        "settings": {**COMPILER_SETTINGS, "outputSelection": {"*": {"*": _OUTPUTS}}},
    }


def _compiler_version(shim: Path) -> str:
    version = get_version_str_from_solc_binary(shim)
    if not version.startswith(SOLC_VERSION + "+"):
        raise ToolchainError(f"solcjs {version} found, {SOLC_VERSION} is pinned")
    return version


def compile_contracts(directory: Path | None = None) -> dict[str, Artifact]:
    """Compile every contract of ``contracts/src`` (or ``directory``); artifacts by contract name."""
    node_executable()
    solcjs_module()
    shim = solc_shim()
    sources = source_files(directory)
    try:
        version = _compiler_version(shim)
        output = solcx.compile_standard(standard_input(sources), solc_binary=shim)
    except SolcError as error:
        raise CompilationError(f"solc failed: {error}") from None
    info = CompilerInfo(version=version, settings=COMPILER_SETTINGS)
    digest = source_hash(sources)
    artifacts: dict[str, Artifact] = {}
    for unit in sources:
        for name, contract in output.get("contracts", {}).get(unit, {}).items():
            artifacts[name] = Artifact.model_validate(
                {
                    "contractName": name,
                    "abi": contract["abi"],
                    "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
                    "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
                    "compiler": info,
                    "sourceHash": digest,
                    "metadata": contract["metadata"],
                }
            )
    return artifacts


def write_artifacts(directory: Path | None = None) -> list[Path]:
    """Compile and write ``<Name>.json`` per contract into ``contracts/artifacts`` (or ``directory``)."""
    target = directory or ARTIFACTS_DIR
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, artifact in sorted(compile_contracts().items()):
        path = artifact_path(name, target)
        path.write_text(artifact.to_json(), encoding="utf-8")
        written.append(path)
    return written


def stale_artifacts() -> list[str]:
    """Names of contracts whose checked-in artifact differs from a fresh compilation."""
    stale: list[str] = []
    for name, artifact in sorted(compile_contracts().items()):
        path = artifact_path(name)
        if not path.is_file() or path.read_text(encoding="utf-8") != artifact.to_json():
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m secureflow.ledger.compiler [--check]``: rebuild the artifacts or check them."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--check"]:
        stale = stale_artifacts()
        for name in stale:
            print(f"stale: {artifact_path(name)}", file=sys.stderr)
        return 1 if stale else 0
    if args:
        print("usage: python -m secureflow.ledger.compiler [--check]", file=sys.stderr)
        return 2
    for path in write_artifacts():
        print(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
