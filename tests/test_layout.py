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


ALIASES = {"secureflow.client": "api/client/_alias"}
"""Short names: a package folder installed under another name (only that one), to re-export a package."""


def test_every_package_folder_is_installed_under_secureflow() -> None:
    config = tomli.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    by_folder = {folder: name for name, folder in ALIASES.items()}
    folders = {
        by_folder.get(
            init.parent.relative_to(ROOT).as_posix(),
            "secureflow." + ".".join(init.parent.relative_to(ROOT).parts),
        )
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert folders == listed, f"missing: {folders - listed}, stale: {listed - folders}"
    assert config["package-dir"] == {f"secureflow.{p}": p for p in PACKAGES} | ALIASES


def test_an_alias_package_only_hands_out_the_package_it_names() -> None:
    """``secureflow.client`` is ``secureflow.api.client`` itself: the same modules, none loaded twice."""
    import secureflow.api.client as long_name
    import secureflow.client as short_name
    from secureflow.client import errors, models

    assert short_name is long_name and models is long_name.models and errors is long_name.errors
    assert short_name.Client is long_name.sync.Client
    assert [p.name for p in (ROOT / ALIASES["secureflow.client"]).iterdir() if p.suffix == ".py"] == [
        "__init__.py"
    ]


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


IMPORT = re.compile(r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\b|import\s+([A-Za-z_]\w*))", re.M)
# Imported by our packages but provided by a distribution under another name, or by the interpreter.
NOT_ON_PYPI = {"secureflow", "__future__"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_package_our_code_imports_is_declared() -> None:
    """`[project] dependencies` names each distribution whose modules api/, compute/ or ledger/ import."""
    import importlib.metadata

    declared = {
        _normalise(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0])
        for spec in tomli.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    imported = {
        match.group(1) or match.group(2)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        for match in IMPORT.finditer(path.read_text())
    }
    wanted = sorted(imported - NOT_ON_PYPI - set(sys.stdlib_module_names))
    # module -> distributions whose RECORD installs it (3.10's packages_distributions reads only
    # top_level.txt, which many wheels lack)
    providers: dict[str, set[str]] = {module: set() for module in wanted}
    for dist in importlib.metadata.distributions():
        record = dist.read_text("RECORD") or ""
        for module in wanted:
            if f"\n{module}/" in record or record.startswith(f"{module}/") or f"\n{module}." in record:
                providers[module].add(_normalise(dist.metadata["Name"]))
    missing = {}
    for module in wanted:
        assert providers[module], f"{module} is imported but no installed distribution provides it"
        if not providers[module] & declared:
            missing[module] = sorted(providers[module])
    assert missing == {}
