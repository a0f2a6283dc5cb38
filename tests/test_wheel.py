"""What the wheel ships: the product's packages under ``secureflow/`` and nothing that only tests or
benchmarks use (those helpers live in the repository's ``tools/`` and ``tests/``, which are never packaged).

The wheel is built from a copy of the sources with the project's own build backend (setuptools, as
``pyproject.toml`` configures it), and its file list is inspected.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``{module name: source}`` of every Python module in the wheel built from the working tree (a package's
    ``__init__`` under the package's own name)."""
    src = tmp_path_factory.mktemp("wheel-src")
    out = tmp_path_factory.mktemp("wheel-out")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("api", "compute", "ledger"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    build = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", build, str(out)], cwd=src, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    wheel = out / done.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert sorted({name.split("/")[0] for name in names}) == ["secureflow", "secureflow-0.1.0.dist-info"]
        return {
            name.removesuffix(".py").replace("/", "."): archive.read(name).decode()
            for name in names
            if name.endswith(".py")
        }


def _imported_by(module: str, source: str, shipped: set[str], packages: set[str]) -> set[str]:
    """The shipped modules that ``module`` imports (``from a import b`` counts ``a.b`` if shipped)."""
    here = module if module in packages else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{parent}.{base}".rstrip(".")
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.List):  # a process started as [sys.executable, "-m", "secureflow.x.y", ...]
            words = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if "-m" in words:
                found |= set(words[words.index("-m") + 1 :][:1])
    return found & shipped


def _entry_points() -> set[str]:
    scripts = tomli.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return {target.split(":")[0] for target in scripts.values()}


def test_the_wheel_ships_no_test_or_benchmark_helper(wheel_modules: dict[str, str]) -> None:
    """Every shipped module is used by the product: an entry point, a package's ``__init__``/``__main__``,
    a module found by discovery (algorithms, migrations), imported by another shipped module or started by
    one as a process (``python -m``). A module
    only the tests or the benchmarks import (a live-server helper, a fixture) belongs in ``tools/``."""
    modules = {name.removesuffix(".__init__"): source for name, source in wheel_modules.items()}
    shipped = set(modules)
    packages = {name.removesuffix(".__init__") for name in wheel_modules if name.endswith(".__init__")}
    reached = _entry_points() | packages | {name for name in shipped if name.endswith(".__main__")}
    reached |= {name for name in shipped if ".algorithms." in name or ".migrations." in name}
    for module, source in modules.items():
        reached |= _imported_by(module, source, shipped, packages) - {module}
    assert sorted(shipped - reached) == []


def test_the_wheel_holds_no_test_tree_and_no_tools(wheel_modules: dict[str, str]) -> None:
    assert [m for m in wheel_modules if m.split(".")[0] in ("tests", "tools", "scripts")] == []
    assert {"secureflow.api.server.app", "secureflow.client.__init__"} <= set(wheel_modules)
