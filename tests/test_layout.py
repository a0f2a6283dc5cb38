"""The layout the import names rest on: every package folder is installed under ``secureflow.``, and no code
imports the folders by their bare names (they would load a second copy of a module beside the installed one).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomli

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "compute", "ledger")
BARE_IMPORT = re.compile(r"^\s*(?:from|import)\s+(?:api|compute|ledger)(?:[.\s]|$)", re.M)


def _sources() -> list[Path]:
    found: list[Path] = []
    for folder in (*PACKAGES, "tests", "scripts", "tools"):
        found += [p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]
    return found


def test_every_package_folder_is_installed_under_secureflow() -> None:
    config = tomli.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {
        "secureflow." + ".".join(init.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert folders == listed, f"missing: {folders - listed}, stale: {listed - folders}"
    assert config["package-dir"] == {f"secureflow.{p}": p for p in PACKAGES}


def test_nothing_imports_the_bare_folder_names() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for path in _sources()
        for match in BARE_IMPORT.finditer(path.read_text())
    ]
    assert offenders == []


def test_the_suite_itself_loaded_no_bare_package() -> None:
    """The test process has the repository root on sys.path: a stray bare import would show up here."""
    assert [name for name in PACKAGES if name in sys.modules] == []
