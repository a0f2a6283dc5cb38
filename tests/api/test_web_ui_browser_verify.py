"""Verification in the browser (``/ui``, ``verify.js``): Debian's chromium checks a receipt against anvil.

A real job's steps are anchored and confirmed on the session's anvil by the real anchoring worker
(`anchored_job`, as in tests/api/test_web_ui.py). The auditor opens the page with ``?node=`` set to
anvil's URL, uploads the deployment file, loads a step's receipt from the API, and clicks "Verify in
my browser": the page computes the record hash, leaf and proof itself and asks anvil (directly,
JSON-RPC over fetch) for the rest. Its verdict, check by check (name, status and detail), equals
``secureflow.ledger.verify.verify_receipt`` on the same receipt, node and pin: on the valid receipt and
on each kind of tampering (record, proof, root, contract address, chain id), where the failing check
is shown in red; an audit bundle's receipts and bundle checks equal ``verify_bundle``'s (more bundles in
tests/api/test_web_ui_browser_bundle.py). While it verifies, the page sends nothing to the API (its
network log says so), and without a chosen node its CSP lets it call nothing but the API. Screenshots go
to the test's tmp dir.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from playwright.sync_api import Locator, Page, expect
from stack import ALICE, BOB, anchor_and_index, close_job_on_chain
from test_api_service import Env, env  # noqa: F401  (the live app fixture)
from test_web_ui import Ui, anchored_job, browser, ui  # noqa: F401  (the browser fixtures)

from secureflow.api.server.routes.ui import content_security_policy
from secureflow.ledger.chain import TransactionSender
from secureflow.ledger.deploy import connect, write_deployment
from secureflow.ledger.devchain import DEV_PRIVATE_KEYS
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.receipts import AuditBundle, Receipt
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.settlement.client import SettlementClient
from secureflow.ledger.settlement.contribution import DataShareInputs, PartyData, prepare_contribution
from secureflow.ledger.verify import (
    CHECK_ORDER,
    BundleVerdict,
    PinnedDeployment,
    Verdict,
    verify_bundle,
    verify_receipt,
    verify_receipts,
)

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

BROWSER_PIN_SOURCE = "the deployment JSON you gave"  # what the page says the pin came from


def _flip(hex32: str) -> str:
    """The same 32-byte hex value with its last digit changed."""
    return hex32[:-1] + ("0" if hex32[-1] != "0" else "1")


def _tamper_record(r: dict[str, Any]) -> None:
    r["record"]["algorithm"] = "ss_xgb"


def _tamper_proof(r: dict[str, Any]) -> None:
    r["proof"][0] = _flip(r["proof"][0])


def _tamper_root(r: dict[str, Any]) -> None:
    r["batch_root"] = _flip(r["batch_root"])


def _tamper_contract(r: dict[str, Any]) -> None:
    r["contract"] = ALICE  # an address, not the pinned ledger


def _tamper_chain_id(r: dict[str, Any]) -> None:
    r["chain_id"] = r["chain_id"] + 1


TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "record": (_tamper_record, "record_hash"),
    "proof": (_tamper_proof, "proof"),
    "root": (_tamper_root, "proof"),
    "contract": (_tamper_contract, "contract_pinned"),
    "chain_id": (_tamper_chain_id, "chain_id"),
}
"""Kind -> (how the receipt is altered, the check that fails first)."""


def _open_with_node(tab: Ui, tmp_path: Path) -> Path:
    """The page opened as the auditor does: choose anvil's URL (the page reloads with ?node=), upload
    the deployment file, use the auditor's key. Returns the deployment file."""
    deployment_file = tmp_path / "deployment.json"
    write_deployment(tab.env.stack.deployment, deployment_file)
    tab.open()
    expect(tab.page.locator("#bv-run")).to_be_disabled()  # no node chosen: nothing to verify against
    tab.page.fill("#bv-node", tab.env.stack.rpc_url)
    with tab.page.expect_navigation():
        tab.page.click("#bv-node-use")
    assert urlsplit(tab.page.url).query == "node=" + quote(tab.env.stack.rpc_url, safe="")
    expect(tab.page.locator("#bv-node-current")).to_have_text(tab.env.stack.rpc_url)
    expect(tab.page.locator("#bv-run")).to_be_enabled()
    tab.page.set_input_files("#bv-deployment-file", str(deployment_file))
    expect(tab.page.locator("#bv-deployment")).to_have_value(deployment_file.read_text())
    tab.use_key("auditor")
    expect(tab.page.locator("#whoami-role")).to_have_text("auditor")
    return deployment_file


def _load_receipt(tab: Ui, job_id: str, seq: int) -> dict[str, Any]:
    """Open the job and load step ``seq``'s receipt from the API into the browser verifier."""
    tab.page.goto(tab.page.url.split("#")[0] + f"#job/{job_id}")
    expect(tab.page.locator("#job-id")).to_have_text(job_id)
    tab.page.get_by_role("button", name=f"Load the receipt of step {seq} for verification").click()
    expect(tab.page.locator("#bv-loaded")).to_be_visible()
    loaded: dict[str, Any] = json.loads(tab.page.locator("#bv-receipt").input_value())
    assert loaded == tab.env.call("GET", f"/v1/jobs/{job_id}/steps/{seq}/receipt", "auditor").json()
    return loaded


def _checks_shown(verdict: Locator) -> list[dict[str, str]]:
    return [
        {
            "name": str(item.get_attribute("data-check")),
            "status": str(item.get_attribute("data-status")),
            "detail": item.locator(".check-detail").text_content() or "",
        }
        for item in verdict.locator("li.check").all()
    ]


def _verify_in_browser(page: Page) -> list[dict[str, str]]:
    """Click "Verify in my browser", wait for the verdict, and return its checks as shown."""
    page.evaluate("() => document.getElementById('bv-verdict').replaceChildren()")  # no stale verdict
    page.click("#bv-run")
    result = page.locator("#bv-result")
    expect(result).to_be_visible()
    expect(page.locator("#bv-run")).to_be_enabled()
    return _checks_shown(result)


def _browser_pin(env: Env) -> PinnedDeployment:  # noqa: F811
    return PinnedDeployment.of_deployment(env.stack.deployment, source=BROWSER_PIN_SOURCE)


def _python_verdict(env: Env, receipt: dict[str, Any]) -> Verdict:  # noqa: F811
    return verify_receipt(receipt, env.stack.rpc_url, _browser_pin(env), min_confirmations=1)


def _as_shown(verdict: Verdict | BundleVerdict) -> list[dict[str, str]]:
    return [check.model_dump() for check in verdict.checks]


def _bundle_in_browser_as_python(tab: Ui, bundle: dict[str, Any]) -> BundleVerdict:
    """Verify ``bundle`` in the page: its bundle checks, summary and warnings are verify_bundle's."""
    tab.page.fill("#bv-receipt", json.dumps(bundle))
    _verify_in_browser(tab.page)
    expected = verify_bundle(AuditBundle.model_validate(bundle), tab.env.stack.rpc_url, _browser_pin(tab.env))
    result = tab.page.locator("#bv-result")
    assert _checks_shown(result.locator("#bv-bundle-checks")) == _as_shown(expected)
    expect(result.locator(".verdict-summary")).to_have_text(expected.summary())
    warnings = result.locator(":scope > .verdict-warning").all_text_contents()
    assert [w.removeprefix("warning: ") for w in warnings] == expected.warnings
    return expected


def test_browser_verdict_on_a_valid_receipt_equals_secureflow_verify_without_asking_the_api(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
    tmp_path: Path,
) -> None:
    job_id = anchored_job(env, 3)
    _open_with_node(ui, tmp_path)
    receipt = _load_receipt(ui, job_id, 1)

    api_origin = urlsplit(env.url)
    node_origin = urlsplit(env.stack.rpc_url)
    start = len(ui.requests)
    shown = _verify_in_browser(ui.page)
    during = ui.requests[start:]
    ui.page.screenshot(path=str(tmp_path / "browser-verify-valid.png"), full_page=True)

    expected = _python_verdict(env, receipt)
    assert expected.ok, expected.summary()
    assert shown == _as_shown(expected)
    assert [c["name"] for c in shown] == list(CHECK_ORDER)
    assert {c["status"] for c in shown} == {"passed"}
    result = ui.page.locator("#bv-result")
    expect(result).to_have_attribute("data-verdict", "valid")
    expect(result.locator(".verdict-title")).to_have_text("valid")
    expect(result.locator(".verdict-pinned")).to_contain_text(f"the node you chose, {env.stack.rpc_url}")
    for item in result.locator("li.check").all():  # each check shown in green
        expect(item.locator(".check-status")).to_have_css("color", "rgb(26, 127, 55)")

    # the acceptance check: during verification the page asked only the node, never the API
    assert during, "the page made no request while verifying"
    hosts = {(urlsplit(url).scheme, urlsplit(url).netloc) for url in during}
    assert hosts == {(node_origin.scheme, node_origin.netloc)}, during
    assert (api_origin.scheme, api_origin.netloc) not in hosts
    refused = [m for m in ui.console if "Content Security Policy" in m or "Refused to" in m]
    assert not refused, refused
    assert ui.page.evaluate("() => localStorage.length") == 0
    assert env.keys["auditor"] not in ui.page.url


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_browser_catches_tampering_like_secureflow_verify(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
    tmp_path: Path,
    kind: str,
) -> None:
    job_id = anchored_job(env, 3)
    _open_with_node(ui, tmp_path)
    receipt = _load_receipt(ui, job_id, 2)
    alter, failing = TAMPERING[kind]
    tampered = copy.deepcopy(receipt)
    alter(tampered)
    ui.page.fill("#bv-receipt", json.dumps(tampered, indent=2))

    start = len(ui.requests)
    shown = _verify_in_browser(ui.page)
    ui.page.screenshot(path=str(tmp_path / f"browser-verify-tampered-{kind}.png"), full_page=True)

    expected = _python_verdict(env, tampered)
    assert not expected.ok and expected.first_failure is not None
    assert expected.first_failure.name == failing, expected.summary()
    assert shown == _as_shown(expected)
    result = ui.page.locator("#bv-result")
    expect(result).to_have_attribute("data-verdict", "invalid")
    expect(result.locator(".verdict-failed")).to_contain_text(failing)
    check = result.locator(f'li[data-check="{failing}"]')
    expect(check).to_have_attribute("data-status", "failed")
    expect(check).to_have_class("check check-failed")
    expect(check.locator(".check-status")).to_have_css("color", "rgb(180, 35, 24)")  # red
    expect(check).to_have_css("background-color", "rgb(253, 236, 234)")
    expect(check.locator(".check-detail")).to_have_text(expected.check(failing).detail)
    api = urlsplit(env.url).netloc
    assert all(urlsplit(url).netloc != api for url in ui.requests[start:]), ui.requests[start:]

    # the untouched receipt, verified again in the same page, is valid
    ui.page.fill("#bv-receipt", json.dumps(receipt))
    assert {c["status"] for c in _verify_in_browser(ui.page)} == {"passed"}


def test_browser_verifies_each_receipt_of_an_audit_bundle_like_secureflow_verify(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
    tmp_path: Path,
) -> None:
    job_id = anchored_job(env, 3)
    _open_with_node(ui, tmp_path)
    ui.page.goto(ui.page.url.split("#")[0] + f"#job/{job_id}")
    expect(ui.page.locator("#job-id")).to_have_text(job_id)
    ui.page.click("#bundle-load")
    expect(ui.page.locator("#bv-loaded")).to_contain_text("3 receipts")
    bundle: dict[str, Any] = json.loads(ui.page.locator("#bv-receipt").input_value())
    assert bundle == env.call("GET", f"/v1/jobs/{job_id}/bundle", "auditor").json()
    _tamper_record(bundle["receipts"][1])
    ui.page.fill("#bv-receipt", json.dumps(bundle))

    start = len(ui.requests)
    _verify_in_browser(ui.page)
    ui.page.screenshot(path=str(tmp_path / "browser-verify-bundle.png"), full_page=True)

    expected = verify_receipts(bundle["receipts"], env.stack.rpc_url, _browser_pin(env), min_confirmations=1)
    assert [v.ok for v in expected] == [True, False, True]
    whole = verify_bundle(AuditBundle.model_validate(bundle), env.stack.rpc_url, _browser_pin(env))
    assert [v.checks for v in whole.receipts] == [v.checks for v in expected]
    result = ui.page.locator("#bv-result")
    expect(result).to_have_attribute("data-verdict", "invalid")
    expect(result.locator(".verdict-summary")).to_have_text(whole.summary())
    assert whole.summary().startswith(
        f"job {job_id}: INVALID, 2/3 receipts valid (failed: record_hash at seq 1)"
    )
    # the bundle checks too (tests/api/test_web_ui_browser_bundle.py has them on complete and tampered jobs)
    assert _checks_shown(result.locator("#bv-bundle-checks")) == _as_shown(whole)
    for index, verdict in enumerate(expected):
        shown = result.locator(f'details.bv-receipt[data-index="{index}"]')
        expect(shown).to_have_attribute("data-verdict", "valid" if verdict.ok else "invalid")
        assert _checks_shown(shown) == _as_shown(verdict)
    failing = result.locator('details.bv-receipt[data-index="1"] li[data-check="record_hash"]')
    expect(failing).to_have_attribute("data-status", "failed")
    expect(failing.locator(".check-status")).to_have_css("color", "rgb(180, 35, 24)")
    api = urlsplit(env.url).netloc
    assert all(urlsplit(url).netloc != api for url in ui.requests[start:]), ui.requests[start:]


def test_the_page_may_call_a_node_only_when_the_auditor_chose_it(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
) -> None:
    node = env.stack.rpc_url
    probe = """async (url) => {
        try {
            const call = {jsonrpc: "2.0", id: 1, method: "eth_chainId", params: []};
            await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                              body: JSON.stringify(call)});
            return "reached";
        } catch (err) {
            return "blocked";
        }
    }"""
    ui.open()
    assert ui.page.evaluate(probe, node) == "blocked"  # the CSP: this origin only
    assert any("Content Security Policy" in m or "Refused to connect" in m for m in ui.console)

    response = ui.page.goto(env.url + "/ui?node=" + quote(node, safe=""))
    assert response is not None and response.status == 200
    origin = urlsplit(node)
    node_origin = f"{origin.scheme}://{origin.netloc}"
    assert response.headers["content-security-policy"] == content_security_policy(node_origin)
    assert ui.page.evaluate(probe, node) == "reached"
    assert ui.page.evaluate(probe, "http://127.0.0.2:9/") == "blocked"  # any other origin still is not

    for bad in (
        "javascript:alert(1)",
        "ftp://127.0.0.1/",
        "http://user:secret@127.0.0.1:8545",
        "http://127.0.0.1:8545; connect-src *",
        "http://127.0.0.1:8545 https://evil.example",
        "http://",
        "http://127.0.0.1:99999",
    ):
        refused = requests.get(env.url + "/ui", params={"node": bad}, timeout=30)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["code"] == "bad_request", bad
        assert "secret" not in refused.headers.get("content-security-policy", ""), bad


def test_browser_attributes_a_contribution_record_through_the_settlement_like_secureflow_verify(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A settlement's contribution record is unsigned: the parties adopt it by approving its weights on the
    pinned Settlement. Before they did, the browser fails party_signatures as secureflow verify does; once
    the weights are set from it, both pass it, naming the Settlement. The job's bundle has verify_bundle's
    bundle checks, summary and warnings in the browser before (the record named unadopted) and after."""
    job_id = anchored_job(env, 2)
    close_job_on_chain(env.stack, env.store, job_id)  # a contribution record follows the close
    parties = env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()["parties"]
    assert parties == [ALICE, BOB]
    inputs = DataShareInputs(
        parties=(PartyData(party=ALICE, features=2, label_columns=1), PartyData(party=BOB, features=3))
    )
    proposal = prepare_contribution(job_id, 2, inputs, job_parties=parties)
    env.store.accept_record(to_outbox(proposal.step_record()), after_close=True)
    anchor_and_index(env.stack, env.store)
    _open_with_node(ui, tmp_path)

    receipt = _load_receipt(ui, job_id, 2)
    pending = _python_verdict(env, receipt)
    assert pending.failed == ["party_signatures"], pending.summary()
    assert _verify_in_browser(ui.page) == _as_shown(pending)
    bundle = env.call("GET", f"/v1/jobs/{job_id}/bundle", "auditor").json()
    unadopted = _bundle_in_browser_as_python(ui, bundle)  # an unadopted contribution record after the close
    assert unadopted.unadopted == [2] and "unadopted contribution record" in unadopted.summary()
    assert any("not attributed to the job's parties" in w for w in unadopted.warnings)
    ui.page.fill("#bv-receipt", json.dumps(receipt))

    client = env.stack.client()
    sender = TransactionSender(client, DEV_PRIVATE_KEYS[1], ChainNonceSource(client.w3))
    settlement = SettlementClient(connect(client, env.stack.deployment, "Settlement"), sender)
    weights = proposal.weights_proposal(Receipt.model_validate(receipt))
    keys = {ALICE: DEV_PRIVATE_KEYS[1], BOB: DEV_PRIVATE_KEYS[2]}
    settlement.set_weights(weights, {p: settlement.sign_approval(keys[p], weights) for p in parties})

    adopted = _python_verdict(env, receipt)
    assert adopted.ok and "Settlement" in adopted.check("party_signatures").detail, adopted.summary()
    assert _verify_in_browser(ui.page) == _as_shown(adopted)
    attributed = _bundle_in_browser_as_python(ui, bundle)
    assert attributed.unadopted == [] and attributed.receipts[2].ok, attributed.summary()
    ui.page.screenshot(path=str(tmp_path / "browser-verify-contribution.png"), full_page=True)
