"""Where the pinned npm toolchain lives: the anvil binary, hardhat's CLI, solcjs and OpenZeppelin sources.

The toolchain is installed by ``scripts/bootstrap.sh`` (``npm ci``) into the
project's ``node_modules``. ``SECUREFLOW_NODE_MODULES`` overrides the location.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from secureflow.ledger.errors import ToolchainError

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_ANVIL_PLATFORMS = {
    ("Linux", "x86_64"): "anvil-linux-amd64",
    ("Linux", "aarch64"): "anvil-linux-arm64",
    ("Darwin", "x86_64"): "anvil-darwin-amd64",
    ("Darwin", "arm64"): "anvil-darwin-arm64",
}


def node_modules() -> Path:
    """The ``node_modules`` folder holding the pinned toolchain."""
    override = os.environ.get("SECUREFLOW_NODE_MODULES")
    path = Path(override) if override else PROJECT_ROOT / "node_modules"
    if not path.is_dir():
        raise ToolchainError(f"npm toolchain not found at {path}")
    return path


def anvil_binary() -> Path:
    """The platform anvil binary (started directly, never through the node wrapper)."""
    package = _ANVIL_PLATFORMS.get((platform.system(), platform.machine()))
    if package is None:
        raise ToolchainError(f"no anvil build for {platform.system()} {platform.machine()}")
    binary = node_modules() / "@foundry-rs" / package / "bin" / "anvil"
    if not binary.is_file():
        raise ToolchainError(f"anvil binary missing at {binary}")
    return binary


def hardhat_cli() -> Path:
    """hardhat's CLI script (``node_modules/hardhat/internal/cli/cli.js``), run with `node_executable`.

    Run directly rather than through ``npx``/``.bin/hardhat`` so that the node process is the one we
    start (its own process group still holds EDR, which runs inside it as a native module).
    """
    cli = node_modules() / "hardhat" / "internal" / "cli" / "cli.js"
    if not cli.is_file():
        raise ToolchainError(f"hardhat's CLI missing at {cli}")
    return cli


def solcjs_module() -> Path:
    """The solcjs package folder (``node_modules/solc``)."""
    path = node_modules() / "solc"
    if not (path / "soljson.js").is_file():
        raise ToolchainError(f"solcjs missing at {path}")
    return path


def node_executable() -> str:
    """The Node.js interpreter that runs solcjs."""
    node = shutil.which("node")
    if node is None:
        raise ToolchainError("node is not on PATH", hint="install Node.js >= 18 (apt-get install nodejs)")
    return node
