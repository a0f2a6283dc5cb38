"""slither (static analysis) on the three production contracts: no finding outside the committed triage.

slither runs from its own venv (``.tools/slither-venv``, from ``scripts/bootstrap.sh``): a missing venv
fails the test, it is never skipped. The run compiles ``contracts/src`` through the solcjs shim with the
settings of ``ledger/compiler.py`` and runs every detector; the test fails on any finding that
``tools/slither-triage.json`` does not accept (a new finding fails CI), on a stale triage entry, and
unless slither really compiled the three contracts and ran its detectors (it cannot pass vacuously).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tools import slither_check
from tools.slither_check import Finding, Report, SlitherError, Triage

PRODUCTION = {
    "contracts/src/AuditLedger.sol": ["AuditLedger"],
    "contracts/src/ConsortiumRegistry.sol": ["ConsortiumRegistry"],
    "contracts/src/Settlement.sol": ["Settlement"],
}
# slither 0.11.6 has 100+ detectors; far fewer means detectors were excluded somewhere.
MIN_DETECTORS = 90


@pytest.fixture(scope="module")
def report() -> Report:
    try:
        return slither_check.run_slither()
    except SlitherError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def triage() -> Triage:
    return slither_check.load_triage()


def test_slither_analysed_the_three_production_contracts(report: Report) -> None:
    assert report.compiled == PRODUCTION, f"slither compiled {report.compiled}"
    # our three, their OpenZeppelin bases and libraries
    assert report.analyzed_contracts >= len(PRODUCTION) + 10, report.analyzed_contracts
    assert len(report.detectors_available) >= MIN_DETECTORS, report.detectors_available
    assert report.detectors_run >= len(report.detectors_available), (
        f"slither ran {report.detectors_run} of {len(report.detectors_available)} detectors"
    )
    # the analysis reached the code: the accepted findings point into all of it
    assert {f.contract for f in report.findings} >= {"AuditLedger", "Settlement"}


def test_no_finding_outside_the_triage(report: Report, triage: Triage) -> None:
    problems = slither_check.problems(report, triage)
    assert not problems, "\n\n".join(problems)


def test_triage_file_is_for_this_slither(triage: Triage) -> None:
    assert triage.slither_version == slither_check.pinned_version(), (
        f"tools/slither-triage.json was made with slither {triage.slither_version}, "
        f"{slither_check.pinned_version()} is pinned: re-run tools/slither_check.py and re-triage"
    )
    keys = [(e.detector, e.contract, e.function, e.nodes) for e in triage.accepted]
    assert len(keys) == len(set(keys)), "duplicate entries in tools/slither-triage.json"


def test_triage_names_known_detectors_and_contracts(report: Report, triage: Triage) -> None:
    contracts = {name for names in PRODUCTION.values() for name in names}
    for entry in triage.accepted:
        assert entry.detector in report.detectors_available, entry.label()
        assert entry.contract is None or entry.contract in contracts, entry.label()


def test_a_finding_that_differs_from_its_entry_in_any_field_is_new(report: Report, triage: Triage) -> None:
    """The matcher is exact: the same detector elsewhere, or at another statement, is a new finding."""
    finding = next(f for f in report.findings if f.function and f.nodes)
    assert not slither_check.untriaged([finding], triage)
    variants: list[Finding] = [
        replace(finding, detector="reentrancy-eth"),
        replace(finding, impact="High"),
        replace(finding, contract="ConsortiumRegistry"),
        replace(finding, function=f"{finding.function}2"),
        replace(finding, nodes=(*finding.nodes, "token.transfer(to,amount)")),
    ]
    for variant in variants:
        assert slither_check.untriaged([variant], triage) == [variant], variant.label()
        assert slither_check.problems(replace(report, findings=[*report.findings, variant]), triage)
    # and a triage entry whose finding disappeared is reported as stale
    assert slither_check.stale_entries([f for f in report.findings if f != finding], triage)
