"""An audit bundle's bundle-level checks in the browser (verify.js's verifyBundle), as ``secureflow verify``.

Real jobs on the session's anvil, through the live API (as tests/api/test_web_ui_browser_verify.py): one
submitted with a manifest of three steps whose records commit to the manifest's parameters under the job
secret, signed by both parties, anchored by the real anchoring worker and closed on chain (its bundle is
VALID); one that only its creator consented to (Proposed on chain). In one page, opened with ``?node=``
anvil's URL and the deployment file, the auditor verifies the complete bundle and each kind of tampering
(a record dropped, the manifest, a step's parameters, the job secret, the job header's creator and
parties, another job's id, the last step dropped), the bundle of the job missing a consent, and a pin that
does not hold on the node. Each time
the page's bundle checks (name, status, detail), its summary and its warnings equal
``secureflow.ledger.verify.verify_bundle``'s on the same bundle, node and pin; the failing checks are
shown in red; the page sends nothing to the API while it verifies (only to the node). A value that is not
an audit bundle is refused, as ``secureflow verify`` refuses the file.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect
from stack import (
    ALICE,
    BOB,
    anchor_and_index,
    close_job_on_chain,
    create_job_on_chain,
    signed_by_parties,
    step,
)
from test_api_service import SERVICE, Env, env  # noqa: F401  (the live app fixture)
from test_web_ui import Ui, browser, ui  # noqa: F401  (the browser fixtures)
from test_web_ui_browser_verify import BROWSER_PIN_SOURCE, _browser_pin, _checks_shown, _open_with_node

from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.receipts import AuditBundle
from secureflow.ledger.records import commitment, new_job_secret
from secureflow.ledger.verify import BUNDLE_CHECK_ORDER, BundleVerdict, PinnedDeployment, verify_bundle

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

RED = "rgb(180, 35, 24)"
GREEN = "rgb(26, 127, 55)"


def _manifest(steps: int) -> dict[str, Any]:
    return {
        "name": "bundle-in-the-browser",
        "parties": [{"name": "alice", "address": ALICE}, {"name": "bob", "address": BOB}],
        "datasets": {"raw": {"alice": "a.csv", "bob": "b.csv"}},
        "steps": [
            {"algorithm": "psi", "params": {"key": f"id{seq}"}, "inputs": {"table": "raw"}}
            for seq in range(steps)
        ],
    }


def _submit(env: Env, steps: int) -> dict[str, Any]:  # noqa: F811
    response = env.call("POST", "/v1/jobs", "member", json={"manifest": _manifest(steps), "service": SERVICE})
    assert response.status_code == 201, response.text
    return dict(env.call("GET", f"/v1/jobs/{response.json()['job']['job_id']}", "auditor").json())


def _bundle(env: Env, job_id: str) -> dict[str, Any]:  # noqa: F811
    response = env.call("GET", f"/v1/jobs/{job_id}/bundle", "auditor")
    assert response.status_code == 200, response.text
    return dict(response.json())


def complete_job(env: Env, steps: int) -> dict[str, Any]:  # noqa: F811
    """A job whose bundle verifies: its records' params_hash commit to the manifest's parameters under the
    job secret, both parties sign, the records are anchored and confirmed and the job is closed on chain."""
    job = _submit(env, steps)
    job_id = job["job_id"]
    create_job_on_chain(env.stack, job_id, job["manifest_hash"], job["salt"], creator=job["creator"])
    submitted = _bundle(env, job_id)
    secret, manifest = submitted["job_secret"], submitted["manifest"]
    for seq in range(steps):
        record = step(job_id, seq).model_copy(
            update={"params_hash": commitment(manifest["steps"][seq]["params"], secret)}
        )
        response = env.call(
            "POST",
            f"/v1/jobs/{job_id}/steps",
            "service",
            json=signed_by_parties(record).model_dump(mode="json"),
        )
        assert response.status_code == 201, response.text
    anchor_and_index(env.stack, env.store)
    close_job_on_chain(env.stack, env.store, job_id)
    return _bundle(env, job_id)


def _drop_record(b: dict[str, Any]) -> None:
    del b["records"][1]  # its receipt stays: it carries a record missing from the bundle


def _drop_step(b: dict[str, Any]) -> None:
    del b["records"][1], b["receipts"][1]


def _drop_last_step(b: dict[str, Any]) -> None:
    del b["records"][-1], b["receipts"][-1]


def _change_manifest(b: dict[str, Any]) -> None:
    b["manifest"]["name"] = "another job"


def _change_step_params(b: dict[str, Any]) -> None:
    b["manifest"]["steps"][1]["params"] = {"key": "email"}


def _change_params_hash(b: dict[str, Any]) -> None:
    """The record of step 1 (in the records and in its receipt) commits to other parameters."""
    other = commitment({"key": "email"}, b["job_secret"])
    b["records"][1]["params_hash"] = other
    b["receipts"][1]["record"]["params_hash"] = other


def _change_job_secret(b: dict[str, Any]) -> None:
    b["job_secret"] = new_job_secret()


def _change_creator(b: dict[str, Any]) -> None:
    b["job"]["creator"] = BOB


def _change_parties(b: dict[str, Any]) -> None:
    b["job"]["parties"] = list(reversed(b["job"]["parties"]))


def _other_job_id(b: dict[str, Any]) -> None:
    b["job"]["job_id"] = "0x" + "ab" * 32


def _no_job_secret(b: dict[str, Any]) -> None:
    del b["job_secret"]


TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], set[str]]] = {
    "record dropped": (_drop_record, {"records_covered", "seqs", "step_count"}),
    "step dropped": (_drop_step, {"seqs", "step_count"}),
    "last step dropped": (_drop_last_step, {"step_count", "final_record"}),
    "manifest": (_change_manifest, {"manifest_commitment"}),
    "step params in the manifest": (_change_step_params, {"manifest_commitment"}),
    "params_hash of a step": (_change_params_hash, {"params_commitments", "record_hash"}),
    "job secret": (_change_job_secret, {"manifest_commitment"}),
    "creator": (_change_creator, {"job_header"}),
    "parties": (_change_parties, {"job_header"}),
    "another job's id": (_other_job_id, {"records_covered", "job_header"}),
    "no job secret": (_no_job_secret, {"manifest_commitment"}),
}
"""Kind -> (how the bundle is altered, the checks that fail: bundle checks and receipt checks)."""


def _verify_bundle_in_browser(page: Page, bundle: dict[str, Any]) -> Locator:
    page.fill("#bv-receipt", json.dumps(bundle))
    page.evaluate("() => document.getElementById('bv-verdict').replaceChildren()")  # no stale verdict
    page.click("#bv-run")
    result = page.locator("#bv-result")
    expect(result).to_be_visible()
    expect(page.locator("#bv-run")).to_be_enabled()
    return result


def _python(env: Env, bundle: dict[str, Any]) -> BundleVerdict:  # noqa: F811
    return verify_bundle(AuditBundle.model_validate(bundle), env.stack.rpc_url, _browser_pin(env))


def _assert_shown_as_python(result: Locator, expected: BundleVerdict) -> None:
    """The page's bundle verdict is verify_bundle's: each bundle check (name, status, detail), the summary,
    the warnings, each receipt's checks; failed checks in red, passed ones in green."""
    bundle_checks = result.locator("#bv-bundle-checks")
    assert _checks_shown(bundle_checks) == [c.model_dump() for c in expected.checks]
    expect(result.locator(".verdict-summary")).to_have_text(expected.summary())
    shown_warnings = [
        w.removeprefix("warning: ") for w in result.locator(":scope > .verdict-warning").all_text_contents()
    ]
    assert shown_warnings == expected.warnings
    expect(result).to_have_attribute("data-verdict", "valid" if expected.ok else "invalid")
    for index, verdict in enumerate(expected.receipts):
        assert _checks_shown(result.locator(f'details.bv-receipt[data-index="{index}"]')) == [
            c.model_dump() for c in verdict.checks
        ]
    for check in expected.checks:
        item = bundle_checks.locator(f'li[data-check="{check.name}"]')
        if check.status == "failed":
            expect(item).to_have_class("check check-failed")
            expect(item.locator(".check-status")).to_have_css("color", RED)
        elif check.status == "passed":
            expect(item.locator(".check-status")).to_have_css("color", GREEN)
    if not expected.ok:
        expect(result.locator(":scope > .verdict-failed")).to_have_text(
            " \u2013 failed: " + ", ".join(expected.failed_checks)
        )


def test_browser_bundle_checks_equal_secureflow_verify_on_a_complete_job_and_each_tampering(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
    tmp_path: Path,
) -> None:
    complete = complete_job(env, 3)
    proposed = _submit(env, 2)  # only its creator consents: the job stays Proposed on chain
    create_job_on_chain(
        env.stack,
        proposed["job_id"],
        proposed["manifest_hash"],
        proposed["salt"],
        creator=proposed["creator"],
        consenting=1,
    )
    unconsented = _bundle(env, proposed["job_id"])
    _open_with_node(ui, tmp_path)
    api = urlsplit(env.url).netloc
    node = urlsplit(env.stack.rpc_url).netloc

    # the complete job, loaded from the API with "Load the audit bundle": VALID, every check passed
    ui.page.goto(ui.page.url.split("#")[0] + f"#job/{complete['job']['job_id']}")
    expect(ui.page.locator("#job-id")).to_have_text(complete["job"]["job_id"])
    ui.page.click("#bundle-load")
    expect(ui.page.locator("#bv-loaded")).to_contain_text("3 receipts")
    assert json.loads(ui.page.locator("#bv-receipt").input_value()) == complete
    start = len(ui.requests)
    result = _verify_bundle_in_browser(ui.page, complete)
    during = ui.requests[start:]
    ui.page.screenshot(path=str(tmp_path / "browser-bundle-valid.png"), full_page=True)
    expected = _python(env, complete)
    assert expected.ok, expected.summary()
    assert [c.name for c in expected.checks] == list(BUNDLE_CHECK_ORDER)
    _assert_shown_as_python(result, expected)
    expect(result.locator(".verdict-title")).to_have_text("valid")
    assert during and {urlsplit(url).netloc for url in during} == {node}, during

    # each kind of tampering: the same failing checks as secureflow verify, in red, and never the API
    for kind, (alter, failing) in TAMPERING.items():
        tampered = copy.deepcopy(complete)
        alter(tampered)
        start = len(ui.requests)
        result = _verify_bundle_in_browser(ui.page, tampered)
        expected = _python(env, tampered)
        assert set(expected.failed_checks) == failing, (kind, expected.summary())
        _assert_shown_as_python(result, expected)
        assert all(urlsplit(url).netloc != api for url in ui.requests[start:]), (kind, ui.requests[start:])
        if kind == "parties":
            result.locator("#bv-bundle-checks").screenshot(path=str(tmp_path / "browser-bundle-parties.png"))

    # a job one party never consented to: consents fails (and the job is not closed)
    start = len(ui.requests)
    result = _verify_bundle_in_browser(ui.page, unconsented)
    expected = _python(env, unconsented)
    assert expected.check("consents").status == "failed", expected.summary()
    assert BOB in expected.check("consents").detail
    assert {"consents", "job_closed", "step_count", "final_record"} == set(expected.failed_checks)
    _assert_shown_as_python(result, expected)
    assert all(urlsplit(url).netloc != api for url in ui.requests[start:]), ui.requests[start:]

    # a pin that does not hold on the node (another ledger code hash): the chain's checks are skipped
    contracts = env.stack.deployment.contracts
    ledger = contracts["AuditLedger"]
    wrong = env.stack.deployment.model_copy(
        update={
            "contracts": {
                **contracts,
                "AuditLedger": ledger.model_copy(update={"code_hash": "0x" + "12" * 32}),
            }
        }
    )
    write_deployment(wrong, tmp_path / "wrong-deployment.json")
    ui.page.fill("#bv-deployment", (tmp_path / "wrong-deployment.json").read_text())
    result = _verify_bundle_in_browser(ui.page, complete)
    expected = verify_bundle(
        AuditBundle.model_validate(complete),
        env.stack.rpc_url,
        PinnedDeployment.of_deployment(wrong, source=BROWSER_PIN_SOURCE),
    )
    assert expected.check("job_header").status == "skipped", expected.summary()
    assert "needs code_hash" in expected.check("final_record").detail
    _assert_shown_as_python(result, expected)

    # not an audit bundle: refused (secureflow verify refuses the file), nothing verified
    malformed = copy.deepcopy(complete)
    malformed["job"]["creator"] = "not an address"
    ui.page.fill("#bv-receipt", json.dumps(malformed))
    ui.page.click("#bv-run")
    error = ui.page.locator('#bv-verdict [data-error="the audit bundle"]')
    expect(error).to_contain_text("not an audit bundle: the job.creator")
    expect(ui.page.locator("#bv-result")).to_have_count(0)
    refused = [m for m in ui.console if "Content Security Policy" in m or "Refused to" in m]
    assert not refused, refused
