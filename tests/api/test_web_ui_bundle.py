"""The web page's bundled verifier libraries (``api/server/web/verify-lib.js``) are package-lock.json's.

The bundle is checked in (nothing is fetched or built at run time); ``scripts/build_ui_bundle.sh``
rebuilds it with esbuild from the packages ``npm ci`` installed. These tests rebuild it into a
temporary folder and require the same bytes (the build is deterministic), check that every package
its banner names is at the version package-lock.json pins, that the licence file covers each of them,
and that package.json pins the bundled libraries and esbuild exactly (no ranges).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "api" / "server" / "web"
BUNDLE = WEB / "verify-lib.js"
LICENCES = WEB / "verify-lib.LICENSES.txt"
BANNER_LINE = re.compile(
    r"^ \* bundled: (?P<name>\S+)@(?P<version>\S+) \((?P<license>[^)]*)\) from (?P<dir>\S+)$"
)


def _bundled() -> list[dict[str, str]]:
    head = BUNDLE.read_text().split("*/", 1)[0]
    found = [m.groupdict() for m in map(BANNER_LINE.match, head.splitlines()) if m]
    assert found, f"{BUNDLE} has no banner listing its packages: rebuild it with scripts/build_ui_bundle.sh"
    return found


def test_bundle_banner_matches_package_lock() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    bundled = _bundled()
    for package in bundled:
        entry = lock.get(package["dir"])
        assert entry is not None, f"{package['dir']} is bundled but not in package-lock.json"
        assert entry["version"] == package["version"], package
        assert package["dir"].endswith("node_modules/" + package["name"]), package
    names = {p["name"] for p in bundled}
    assert {"viem", "canonicalize", "@noble/hashes", "@noble/curves"} <= names, names

    declared = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    for direct in ("viem", "canonicalize", "esbuild"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", declared[direct]), f"{direct} is not pinned exactly"
        assert lock[f"node_modules/{direct}"]["version"] == declared[direct], direct

    licences = LICENCES.read_text()
    for package in bundled:
        assert f"==== {package['name']}@{package['version']} " in licences, package


def test_bundle_equals_a_fresh_build_from_package_lock(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "esbuild").is_dir():
        pytest.fail("node and the npm toolchain are needed: run scripts/bootstrap.sh (it runs npm ci)")
    built = subprocess.run(
        [node, str(ROOT / "scripts" / "ui_bundle" / "build.mjs"), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    for name in (BUNDLE.name, LICENCES.name):
        fresh, checked_in = (tmp_path / name).read_bytes(), (WEB / name).read_bytes()
        assert fresh == checked_in, (
            f"api/server/web/{name} differs from a build of package-lock.json: "
            "run scripts/build_ui_bundle.sh and commit the result"
        )
