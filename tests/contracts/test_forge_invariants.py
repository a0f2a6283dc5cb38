"""Foundry invariant, fuzz and unit tests of Settlement and AuditLedger (``contracts/test/forge``), run by
forge from npm.

forge runs ``--offline`` with the solc shim over solcjs (nothing is downloaded), writes only to
``contracts/forge-out`` and ``contracts/forge-cache`` (git-ignored, never ``contracts/artifacts``), builds
the same runtime bytecode as the checked-in artifacts, and reports in JSON. The test fails unless every
expected invariant ran (runs and calls as asked, every handler action called, nothing reverted) and
passed, and every expected unit and fuzz test passed: it cannot pass vacuously. The fuzz seed is random
per run and printed on failure, to replay it with ``--fuzz-seed``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from secureflow.ledger.compiler import solc_shim

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
FORGE = ROOT / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"

INVARIANT_RUNS = 16
INVARIANT_DEPTH = 64
FUZZ_RUNS = 128
_COUNTEREXAMPLE_CHARS = 1500

DEPLOYED_CONTRACTS = ("ConsortiumRegistry", "AuditLedger", "Settlement")
# invariant suite -> (its invariants, its handler's actions)
INVARIANT_SUITES = {
    "test/forge/Settlement.invariant.t.sol:SettlementInvariantTest": (
        {
            "invariant_conservation()",
            "invariant_entitlements()",
            "invariant_membersHoldWhatTheyWerePaid()",
            "invariant_nonPartiesGetNothing()",
            "invariant_handlerExpectationsHeld()",
        },
        {
            "depositEth",
            "depositToken",
            "depositIntoUnsettledJob",
            "withdrawEth",
            "withdrawToken",
            "outsiderWithdraws",
        },
    ),
    "test/forge/AuditLedger.invariant.t.sol:AuditLedgerInvariantTest": (
        {
            "invariant_jobIdsAreBoundToTheirCreator()",
            "invariant_openOnlyWithEveryConsent()",
            "invariant_modelsOnlyByTheServiceForOpenJobs()",
            "invariant_closesProveTheLastRecord()",
            "invariant_handlerExpectationsHeld()",
        },
        {"createJob", "submitConsent", "squat", "anchorStep", "recordModel", "closeJob"},
    ),
}
# unit/fuzz suite -> (its unit tests, its fuzz tests)
UNIT_SUITES = {
    "test/forge/Settlement.t.sol:SettlementTest": (
        {
            "test_depositBeforeWeightsReverts()",
            "test_secondWithdrawalHasNothingToRelease()",
            "test_weightsAreSetOnce()",
            "test_nonPartyCannotSetWeights()",
            "test_membersMustBeTheJobParties()",
            "test_unanchoredRecordIsRejected()",
            "test_forgedApprovalIsRejected()",
            "test_missingApprovalIsRejected()",
            "test_feeOnTransferTokenIsRefused()",
        },
        {
            "testFuzz_nonPartyCannotWithdraw(address)",
            "testFuzz_weightsMustSumTo10000(uint16,uint16,uint16)",
            "testFuzz_roundingIsExactAndMonotone(uint256,uint256,uint256,uint256)",
        },
    ),
    "test/forge/AuditLedger.t.sol:AuditLedgerTest": (
        {
            "test_aReplayedCreateJobIsRefused()",
            "test_aCloseWithAnotherJobsRootIsRefused()",
            "test_aCloseOfAProposedJobIsRefused()",
        },
        {
            "testFuzz_jobIdIsDerivedFromCreatorManifestAndSalt(address,bytes32,bytes32)",
            "testFuzz_aSquatterGetsAnotherJob(uint256,bytes32,bytes32)",
            "testFuzz_aJobOpensOnlyWithTheLastConsent(uint256,uint256)",
            "testFuzz_aConsentByAnotherKeyIsRefused(uint256)",
            "testFuzz_onlyTheAnchoringServiceRecordsModels(address)",
            "testFuzz_onlyTheAnchoringServiceCloses(address)",
            "testFuzz_aCloseProvesTheLastRecord(uint64,uint64,bytes32,bytes32)",
        },
    ),
}


def _forge() -> Path:
    if not (FORGE.is_file() and os.access(FORGE, os.X_OK)):
        pytest.fail(
            f"forge is missing at {FORGE}: run scripts/bootstrap.sh (npm ci installs the pinned "
            "@foundry-rs/forge-linux-amd64, and forge-std inside @layerzerolabs/toolbox-foundry)"
        )
    return FORGE


def _artifacts_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((CONTRACTS / "artifacts").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(CONTRACTS)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _without_metadata(code: str) -> str:
    """Runtime bytecode without solc's CBOR metadata (it hashes source paths, which differ under forge)."""
    hex_ = code.removeprefix("0x")
    return hex_[: -(int(hex_[-4:], 16) + 2) * 2]


def _report(stdout: str) -> dict[str, Any]:
    """forge's JSON report: the last stdout line that is a JSON object of suites."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(report, dict) and all(
                isinstance(v, dict) and "test_results" in v for v in report.values()
            ):
                return report
    raise AssertionError(f"forge printed no JSON test report; stdout ends with: {stdout[-2000:]!r}")


def _failures(report: dict[str, Any]) -> list[str]:
    return [
        f"{suite.split(':')[-1]}.{name}: {result.get('reason')} "
        f"(counterexample: {str(result.get('counterexample'))[:_COUNTEREXAMPLE_CHARS]})"
        for suite, results in report.items()
        for name, result in results["test_results"].items()
        if result.get("status") != "Success"
    ]


def test_forge_invariants_and_fuzz_tests_pass() -> None:
    forge = _forge()
    seed = secrets.randbits(64)
    artifacts_before = _artifacts_digest()
    env = {
        **os.environ,
        "FOUNDRY_INVARIANT_RUNS": str(INVARIANT_RUNS),
        "FOUNDRY_INVARIANT_DEPTH": str(INVARIANT_DEPTH),
        "FOUNDRY_FUZZ_RUNS": str(FUZZ_RUNS),
        "FOUNDRY_INVARIANT_SHRINK_RUN_LIMIT": "500",
        "NO_COLOR": "1",
    }
    result = subprocess.run(
        [
            str(forge),
            "test",
            "--offline",
            "--root",
            str(CONTRACTS),
            "--use",
            str(solc_shim()),
            "--fuzz-seed",
            hex(seed),
            "--json",
        ],
        cwd=CONTRACTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    replay = (
        f"replay: cd contracts && FOUNDRY_INVARIANT_RUNS={INVARIANT_RUNS} "
        f"FOUNDRY_INVARIANT_DEPTH={INVARIANT_DEPTH} FOUNDRY_FUZZ_RUNS={FUZZ_RUNS} "
        "../node_modules/@foundry-rs/forge-linux-amd64/bin/forge test "
        f"--fuzz-seed {seed:#x}"
    )
    assert _artifacts_digest() == artifacts_before, (
        "forge wrote into contracts/artifacts (see contracts/foundry.toml)"
    )
    if result.returncode != 0:
        try:
            failures = _failures(_report(result.stdout))
        except AssertionError:
            failures = []
        pytest.fail(
            f"forge test exited {result.returncode} ({replay}):\n"
            + "\n".join(failures or [result.stdout[-3000:]])
            + f"\nstderr: {result.stderr[-3000:]}"
        )
    report = _report(result.stdout)
    assert not _failures(report), _failures(report)

    assert set(report) == set(INVARIANT_SUITES) | set(UNIT_SUITES), f"suites ran: {sorted(report)}"
    for suite, (expected, handler_actions) in INVARIANT_SUITES.items():
        invariants = report[suite]["test_results"]
        assert set(invariants) == expected, f"{suite}: invariant tests ran: {sorted(invariants)}"
        for name, outcome in invariants.items():
            assert outcome["status"] == "Success", (name, outcome.get("reason"), replay)
            stats = outcome["kind"]["Invariant"]
            assert stats["runs"] == INVARIANT_RUNS, (name, stats["runs"])
            assert stats["calls"] == INVARIANT_RUNS * INVARIANT_DEPTH, (name, stats["calls"])
            assert stats["reverts"] == 0, (name, stats["reverts"])
            actions = {key.rsplit(".", 1)[-1]: value for key, value in stats["metrics"].items()}
            assert set(actions) == handler_actions, (name, sorted(actions))
            for action, counts in actions.items():
                assert counts["calls"] > 0 and counts["reverts"] == 0, (name, action, counts)

    for suite, (unit_tests, fuzz_tests) in UNIT_SUITES.items():
        unit = report[suite]["test_results"]
        assert set(unit) == unit_tests | fuzz_tests, f"{suite}: unit and fuzz tests ran: {sorted(unit)}"
        for name in unit_tests:
            assert "Unit" in unit[name]["kind"], name
        for name in fuzz_tests:
            assert unit[name]["kind"]["Fuzz"]["runs"] == FUZZ_RUNS, name
    # forge tested the code that is deployed: the same runtime bytecode as the checked-in artifacts.
    for name in DEPLOYED_CONTRACTS:
        built_path = CONTRACTS / "forge-out" / f"{name}.sol" / f"{name}.json"
        assert built_path.is_file(), (
            f"forge wrote no {built_path} (its output must go to contracts/forge-out)"
        )
        built = json.loads(built_path.read_text())["deployedBytecode"]["object"]
        checked_in = json.loads((CONTRACTS / "artifacts" / f"{name}.json").read_text())["deployedBytecode"]
        assert _without_metadata(built) == _without_metadata(checked_in), (
            f"forge built {name} differently from contracts/artifacts: align contracts/foundry.toml "
            "with ledger/compiler.py's settings"
        )
