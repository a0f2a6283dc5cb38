"""Static analysis of the production contracts with slither, checked against a committed triage file.

slither-analyzer runs from its own venv, ``.tools/slither-venv`` (it pins web3<8, the project uses web3 8),
installed by ``scripts/bootstrap.sh`` from the hash-locked ``tools/slither-requirements.txt``. It compiles
``contracts/src/*.sol`` offline through the solcjs shim (``ledger/_internal/solc-shim``) from a solc
standard-JSON input with the settings of ``ledger/compiler.py`` (solc 0.8.30, evmVersion berlin, optimizer
200; OpenZeppelin 5.4.0 from ``node_modules``) and runs every detector.

A finding is ours when one of its elements lies in ``contracts/src/*.sol`` (findings only inside
OpenZeppelin are not reported); ``// slither-disable`` comments in the sources are ignored
(``--show-ignored-findings``), so the only way to accept a finding is an entry of
``tools/slither-triage.json``: detector, impact, contract, function, the statements the finding points at
(slither's rendering, independent of line numbers) and a one-line reason. Any other finding is new: fix the
contract, or triage it with a reason. An entry that no longer matches anything is stale and fails too.

Run ``.venv/bin/python -m tools.slither_check`` (exit 1 on a new finding or a stale entry; ``--json`` for
the findings as JSON; ``--root DIR`` to analyse a project-shaped copy: ``DIR/contracts/src`` and
``DIR/node_modules``). ``tests/contracts/test_slither.py`` runs the same check in the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from secureflow.ledger._internal.toolchain import PROJECT_ROOT
from secureflow.ledger.compiler import solc_shim, source_files, standard_input

SLITHER_VENV = PROJECT_ROOT / ".tools" / "slither-venv"
SLITHER = SLITHER_VENV / "bin" / "slither"
REQUIREMENTS_IN = PROJECT_ROOT / "tools" / "slither-requirements.in"
TRIAGE_FILE = PROJECT_ROOT / "tools" / "slither-triage.json"
# The production contracts (contracts/src/test/* and contracts/bench/* are not compiled).
OWN_SOURCE = re.compile(r"^contracts/src/[^/]+\.sol$")
_INCLUDE_PATHS = r"contracts/src/[^/]+\.sol$"
# crytic-compile's default output selection: the ASTs and source maps slither analyses.
_OUTPUT_SELECTION = {
    "*": {
        "*": ["abi", "metadata", "devdoc", "userdoc", "evm.bytecode", "evm.deployedBytecode"],
        "": ["ast"],
    }
}
_SUMMARY = re.compile(r"analyzed \((\d+) contracts with (\d+) detectors\), (\d+) result\(s\) found")
_BOOTSTRAP_HINT = (
    "run scripts/bootstrap.sh (it installs .tools/slither-venv from tools/slither-requirements.txt)"
)

Impact = Literal["High", "Medium", "Low", "Informational", "Optimization"]


class SlitherError(RuntimeError):
    """slither is missing, or it could not compile or analyse the contracts."""


class TriageEntry(BaseModel):
    """One accepted finding: what it is, where, and why it is not (or no longer) a problem."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: str = Field(min_length=1)
    impact: Impact
    contract: str | None
    function: str | None
    nodes: tuple[str, ...] = ()
    reason: str = Field(min_length=20)

    def label(self) -> str:
        """``detector contract.function [statements]`` for messages."""
        where = ".".join(part for part in (self.contract, self.function) if part) or "(no contract)"
        nodes = f" [{'; '.join(self.nodes)}]" if self.nodes else ""
        return f"{self.detector} ({self.impact}) {where}{nodes}"


class Triage(BaseModel):
    """``tools/slither-triage.json``: the slither version it was made with and the accepted findings."""

    model_config = ConfigDict(extra="forbid")

    slither_version: str
    accepted: list[TriageEntry]


@dataclass(frozen=True)
class Finding:
    """A slither result that touches ``contracts/src``, reduced to what identifies it across edits."""

    detector: str
    impact: str
    confidence: str
    contract: str | None
    function: str | None
    nodes: tuple[str, ...]
    description: str

    def matches(self, entry: TriageEntry) -> bool:
        """Whether ``entry`` accepts this finding (every identifying field equal)."""
        return (self.detector, self.impact, self.contract, self.function, self.nodes) == (
            entry.detector,
            entry.impact,
            entry.contract,
            entry.function,
            entry.nodes,
        )

    def label(self) -> str:
        """``detector contract.function [statements]`` for messages."""
        where = ".".join(part for part in (self.contract, self.function) if part) or "(no contract)"
        nodes = f" [{'; '.join(self.nodes)}]" if self.nodes else ""
        return f"{self.detector} ({self.impact}) {where}{nodes}"

    def as_triage_entry(self) -> dict[str, Any]:
        """The triage entry that would accept this finding (the reason is left for a person to write)."""
        return {
            "detector": self.detector,
            "impact": self.impact,
            "contract": self.contract,
            "function": self.function,
            "nodes": list(self.nodes),
            "reason": "WHY this is not a problem",
        }


@dataclass
class Report:
    """What one slither run analysed and found."""

    findings: list[Finding]
    compiled: dict[str, list[str]]  # own source unit -> contracts defined in it
    analyzed_contracts: int
    detectors_run: int
    detectors_available: list[str]


def pinned_version() -> str:
    """The slither-analyzer version pinned in ``tools/slither-requirements.in``."""
    match = re.search(r"^slither-analyzer==(\S+)", REQUIREMENTS_IN.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise SlitherError(f"{REQUIREMENTS_IN} pins no slither-analyzer==VERSION")
    return match.group(1)


def installed_version(venv: Path = SLITHER_VENV) -> str | None:
    """The slither-analyzer version installed in ``venv`` (None if it is not installed)."""
    for dist_info in sorted(venv.glob("lib/python3*/site-packages/slither_analyzer-*.dist-info")):
        return dist_info.name.removeprefix("slither_analyzer-").removesuffix(".dist-info")
    return None


def slither_executable() -> Path:
    """The pinned slither of ``.tools/slither-venv``; SlitherError saying what to run when it is not there."""
    if not (SLITHER.is_file() and os.access(SLITHER, os.X_OK)):
        raise SlitherError(f"slither is not installed at {SLITHER}: {_BOOTSTRAP_HINT}")
    installed, pinned = installed_version(), pinned_version()
    if installed != pinned:
        raise SlitherError(
            f"{SLITHER_VENV} has slither-analyzer {installed}, {pinned} is pinned: {_BOOTSTRAP_HINT}"
        )
    return SLITHER


def standard_json(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The solc standard-JSON input slither compiles: ``root/contracts/src/*.sol`` with our settings."""
    payload = standard_input(source_files(root / "contracts" / "src"))
    payload["settings"]["outputSelection"] = _OUTPUT_SELECTION
    return payload


def _subject(elements: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(contract, function) a finding is about: its first function, statement or contract in our sources."""
    for element in elements:
        parent = element.get("type_specific_fields", {}).get("parent", {})
        if element["type"] == "function":
            return parent.get("name"), element["name"]
        if element["type"] == "node" and parent.get("type") == "function":
            contract = parent.get("type_specific_fields", {}).get("parent", {}).get("name")
            return contract, parent["name"]
        if element["type"] == "contract":
            return element["name"], None
    return None, None


def findings_from(detector_results: list[dict[str, Any]]) -> list[Finding]:
    """The detector results that have an element in ``contracts/src/*.sol``, as Findings."""
    findings: list[Finding] = []
    for result in detector_results:
        own = [
            element
            for element in result.get("elements", [])
            if OWN_SOURCE.match(element.get("source_mapping", {}).get("filename_relative", ""))
        ]
        if not own:
            continue
        contract, function = _subject(own)
        findings.append(
            Finding(
                detector=result["check"],
                impact=result["impact"],
                confidence=result["confidence"],
                contract=contract,
                function=function,
                nodes=tuple(sorted({element["name"] for element in own if element["type"] == "node"})),
                description=result["description"].strip(),
            )
        )
    return sorted(findings, key=lambda f: (f.detector, f.contract or "", f.function or "", f.nodes))


def parse_report(output: dict[str, Any]) -> Report:
    """A Report from slither's ``--json`` output (types compilations, detectors, console, list-detectors)."""
    if not output.get("success"):
        raise SlitherError(f"slither failed: {output.get('error')}")
    results = output.get("results", {})
    compiled: dict[str, list[str]] = {}
    for compilation in results.get("compilations", []):
        for unit in compilation["compilation_units"].values():
            for path, source_unit in unit["source_units"].items():
                if OWN_SOURCE.match(path):
                    compiled.setdefault(path, []).extend(sorted(source_unit.get("contracts", {})))
    console = results.get("console", {})
    summary = _SUMMARY.search(f"{console.get('stdout', '')}\n{console.get('stderr', '')}")
    if summary is None:
        raise SlitherError("slither printed no 'analyzed (N contracts with M detectors)' summary")
    return Report(
        findings=findings_from(results.get("detectors", [])),
        compiled=compiled,
        analyzed_contracts=int(summary.group(1)),
        detectors_run=int(summary.group(2)),
        detectors_available=[d["check"] for d in results.get("list-detectors", [])],
    )


def run_slither(root: Path = PROJECT_ROOT, *, timeout: float = 600) -> Report:
    """Compile ``root/contracts/src`` through the shim, run every slither detector and parse the result.

    ``root`` must look like the project (``contracts/src`` and ``node_modules``): slither reads the
    sources, OpenZeppelin's included, relative to it.
    """
    slither = slither_executable()
    with tempfile.TemporaryDirectory(prefix="secureflow-slither-") as tmp:
        work = Path(tmp)
        input_path = work / "input.json"
        input_path.write_text(json.dumps(standard_json(root)), encoding="utf-8")
        output_path = work / "slither.json"
        command = [
            str(slither),
            str(input_path),
            "--compile-force-framework",
            "solc-json",
            "--solc",
            str(solc_shim()),
            "--include-paths",
            _INCLUDE_PATHS,
            "--show-ignored-findings",
            "--triage-database",
            str(work / "slither.db.json"),
            "--fail-none",
            "--disable-color",
            "--json",
            str(output_path),
            "--json-types",
            "compilations,detectors,console,list-detectors",
        ]
        try:
            result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SlitherError(f"slither did not finish within {timeout:.0f} s") from None
        if result.returncode != 0 or not output_path.is_file():
            raise SlitherError(
                f"slither exited {result.returncode} without a report (compilation through "
                f"{solc_shim()} failed?); its output ends with:\n{(result.stdout + result.stderr)[-3000:]}"
            )
        return parse_report(json.loads(output_path.read_text(encoding="utf-8")))


def load_triage(path: Path = TRIAGE_FILE) -> Triage:
    """The committed triage file."""
    return Triage.model_validate_json(path.read_text(encoding="utf-8"))


def untriaged(findings: Sequence[Finding], triage: Triage) -> list[Finding]:
    """Findings that no triage entry accepts."""
    return [f for f in findings if not any(f.matches(entry) for entry in triage.accepted)]


def stale_entries(findings: Sequence[Finding], triage: Triage) -> list[TriageEntry]:
    """Triage entries that accept none of ``findings`` (the finding is gone: remove the entry)."""
    return [entry for entry in triage.accepted if not any(f.matches(entry) for f in findings)]


def problems(report: Report, triage: Triage) -> list[str]:
    """Everything that fails the check, one message each (empty when the contracts pass)."""
    messages = [
        f"new slither finding {finding.label()}: fix the contract, or add to {TRIAGE_FILE.name} "
        f"{json.dumps(finding.as_triage_entry())} with the reason it is not a problem\n{finding.description}"
        for finding in untriaged(report.findings, triage)
    ]
    messages += [
        f"stale entry in {TRIAGE_FILE.name}, nothing matches it any more: remove it: {entry.label()}"
        for entry in stale_entries(report.findings, triage)
    ]
    return messages


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.slither_check [--root DIR] [--json]``: exit 1 on a new finding or a stale entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="project-shaped folder to analyse")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = parser.parse_args(argv)
    try:
        report = run_slither(args.root.resolve())
    except SlitherError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    triage = load_triage()
    if args.json:
        print(json.dumps([asdict(finding) for finding in report.findings], indent=2))
    else:
        print(
            f"slither {installed_version()}: {report.detectors_run} detectors on {report.analyzed_contracts} "
            f"contracts ({', '.join(sorted(report.compiled))}), "
            f"{len(report.findings)} finding(s) in contracts/src"
        )
        for finding in report.findings:
            entry = next((e for e in triage.accepted if finding.matches(e)), None)
            status = f"accepted: {entry.reason}" if entry else "NEW"
            print(f"- {finding.label()}\n    {status}")
    messages = problems(report, triage)
    for message in messages:
        print(message, file=sys.stderr)
    return 1 if messages else 0


if __name__ == "__main__":
    sys.exit(main())
