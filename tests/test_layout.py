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


NOQA = re.compile(r"#[ \t]*noqa:[ \t]*((?:[A-Z]+[0-9]+[, \t]*)+)(.*)$", re.M)


def test_every_bandit_exception_says_why_in_place() -> None:
    """A ruff ``S`` (bandit) rule switched off on a line carries its reason there: ``# noqa: S603 - why``
    (whole folders are exempted only in ``pyproject.toml``'s per-file-ignores, each with its comment)."""
    bare = []
    for path in _sources():
        for match in NOQA.finditer(path.read_text()):
            codes = re.findall(r"[A-Z]+[0-9]+", match.group(1))
            if any(re.fullmatch(r"S[0-9]+", code) for code in codes) and len(match.group(2).strip(" -:")) < 3:
                bare.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert bare == []


IMPORT = re.compile(r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\b|import\s+([A-Za-z_]\w*))", re.M)
# Imported by our packages but provided by a distribution under another name, or by the interpreter.
NOT_ON_PYPI = {"secureflow", "__future__"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _undeclared(folders: tuple[str, ...], declared_in: tuple[str, ...]) -> dict[str, list[str]]:
    """Modules the folders' code imports whose distribution ``pyproject.toml`` does not declare in
    ``declared_in`` (``project`` and/or dependency groups): {module: the distributions providing it}."""
    import importlib.metadata

    config = tomli.loads((ROOT / "pyproject.toml").read_text())
    specs = [
        spec
        for where in declared_in
        for spec in (
            config["project"]["dependencies"] if where == "project" else config["dependency-groups"][where]
        )
    ]
    declared = {_normalise(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in specs}
    paths = [
        path
        for folder in folders
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    ]
    local = {path.stem for path in paths} | set(folders)  # the tests' and scripts' own helper modules
    imported = {
        match.group(1) or match.group(2) for path in paths for match in IMPORT.finditer(path.read_text())
    }
    wanted = sorted(imported - local - NOT_ON_PYPI - set(sys.stdlib_module_names))
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
    return missing


def test_every_third_party_package_our_code_imports_is_declared() -> None:
    """`[project] dependencies` names each distribution whose modules api/, compute/ or ledger/ import."""
    assert _undeclared(PACKAGES, ("project",)) == {}


def test_every_third_party_package_the_tests_scripts_and_tools_import_is_declared() -> None:
    """The tests, scripts and tools import only what the project or its dev group declares."""
    assert _undeclared(("tests", "scripts", "tools"), ("project", "dev")) == {}


def test_the_readme_architecture_section_names_real_paths() -> None:
    """Every path the README's architecture section names (``api/server/tables.py``, ``compute/worker/``) and
    every folder box of its picture exists, so the layout a newcomer reads there is the repository's."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Architecture and layout") : readme.index("## Development")]
    spans = {
        span
        for span in re.findall(r"`([^`\s]+)`", section)
        if "/" in span and "<" not in span and span.split("/")[0] in (*PACKAGES, "contracts", "tools")
    }
    picture = section[section.index("```\n") : section.index("```", section.index("```\n") + 4)]
    api_row = picture.splitlines()[2]  # the row of api/'s subpackages: cli/ ──▶ dev/ ──▶ …
    boxes = {f"api/{name}/" for name in re.findall(r"\b([a-z]+)/", api_row)}
    missing = sorted(path for path in spans | boxes if not (ROOT / path.rstrip("/")).exists())
    assert len(spans) > 30 and {"api/cli/", "api/coordinator/", "api/server/", "api/client/"} <= boxes
    assert missing == []
