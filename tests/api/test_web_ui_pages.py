"""The console's models, settlement and search pages in a real browser (Debian's chromium, Playwright).

On data a real job produced on the session's anvil (`closed_job`: consents on chain, steps signed by each
party's key, anchored and confirmed by the real anchoring worker, a model anchored, the job closed, every
event indexed) and, for the settlement, the real flow through the API (`settled_job`: the contribution
proposed, its record anchored, both parties' EIP-712 approvals, the weights set, ETH deposited by the
admin and a few wei by bob, alice's withdrawal, each transaction signed by its member's own key):

- the models page lists the model as the chain recorded it with its job, and says whether this API's hash
  is the chain's (a hash altered in the database afterwards shows as different);
- the settlement page draws the weights the chain holds (one bar per member, its basis points), shows
  the contribution record's hash, leaf, batch root and proof, both approvals, every deposit and
  withdrawal, and each member's entitlement, withdrawn and still-to-withdraw amounts, exact to the wei;
- the search box finds the job by model hash, record hash, transaction hash, member address and time
  range, and its results lead to the timeline, the models and the settlement pages; a member who is no
  party finds nothing; a query that is none of these shows the API's 422.

Each page passes axe-core's WCAG 2 A/AA checks, works at 360 px (no sideways scroll) and 1920 px, and
calls nothing but its own origin (the key only in sessionStorage). Screenshots go to the test's tmp folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from playwright.sync_api import expect
from sqlalchemy import update
from stack import ALICE, anchor_and_index
from test_api_service import Env, env  # noqa: F401  (the live app fixture)
from test_console import MODEL_HASH, closed_job
from test_settlement_routes import (
    ADMIN_KEY,
    ALICE_KEY,
    BOB_KEY,
    ETHER,
    LEAVE_ONE_OUT,
    settlement_address,
    transact,
)
from test_web_ui import Ui, browser, other_members_job, ui  # noqa: F401  (the browser fixtures)
from test_web_ui_console import _axe, _no_horizontal_scroll

from secureflow.api.server.serve import add_member_key
from secureflow.ledger.devchain import DEV_CHAIN_ID
from secureflow.ledger.settlement.approval import sign_approval
from secureflow.ledger.store.models import ModelOrm

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

CAROL = Account.create().address  # a member of the API and on chain, party of no job


def _loaded(tab: Ui, section: str) -> None:
    expect(tab.page.locator(f"#{section}")).to_have_attribute("data-loaded", "true")


def settled_job(env: Env) -> str:  # noqa: F811
    """`closed_job`, then its settlement through the API: proposed, anchored, approved by both parties,
    weights set by alice, 10 ETH deposited by the admin and 7 wei by bob, alice's share withdrawn."""
    job_id = closed_job(env, 2)
    base = f"/v1/settlements/{job_id}"
    created = env.call("POST", f"{base}/proposals", "member", json=LEAVE_ONE_OUT)
    assert created.status_code == 201, created.text
    anchor_and_index(env.stack, env.store)
    weights = env.call("GET", f"{base}/proposal", "member").json()["weights"]
    for who, key in (("member", ALICE_KEY), ("bob", BOB_KEY)):
        signature = sign_approval(
            key,
            DEV_CHAIN_ID,
            settlement_address(env),
            bytes.fromhex(job_id[2:]),
            bytes.fromhex(weights["weights_hash"][2:]),
            bytes.fromhex(weights["record_leaf"][2:]),
        )
        approved = env.call("POST", f"{base}/approvals", who, json={"signature": "0x" + signature.hex()})
        assert approved.status_code == 201, approved.text
    transact(env, job_id, "member", ALICE_KEY, "set_weights")
    transact(env, job_id, "admin", ADMIN_KEY, "deposit", amount=10 * ETHER)
    transact(env, job_id, "bob", BOB_KEY, "deposit", amount=7)
    transact(env, job_id, "member", ALICE_KEY, "withdraw")
    return job_id


def test_models_page_shows_each_model_its_job_and_whether_the_hashes_match(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
    tmp_path: Path,
) -> None:
    job_id = closed_job(env, 2)
    [api] = env.call("GET", "/v1/models", "auditor").json()["items"]
    ui.open("#models")
    ui.use_key("auditor")
    _loaded(ui, "models-section")
    row = ui.page.locator(f'#models-body tr[data-model-hash="{MODEL_HASH}"]')
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-job-id", job_id)
    expect(row).to_have_attribute("data-matches", "true")
    expect(row.locator(".model-verdict")).to_contain_text("yes, the same hash")
    expect(row.locator("code.tx")).to_have_text(api["tx_hash"])
    expect(row).to_contain_text("ss_lr.model")
    expect(ui.page.locator("#nav-models")).to_have_attribute("aria-current", "page")
    ui.page.screenshot(path=str(tmp_path / "models.png"), full_page=True)
    assert _axe(ui) == []

    # the API's copy altered afterwards: the page says the chain recorded another hash
    with env.store.engine.begin() as conn:
        conn.execute(update(ModelOrm).where(ModelOrm.job_id == job_id).values(model_hash="0x" + "66" * 32))
    ui.page.click("#models-refresh")
    expect(row).to_have_attribute("data-matches", "false")
    expect(row.locator(".model-verdict")).to_contain_text("NO: here 0x" + "66" * 32)

    row.locator("a.job-link").click()  # from the model to the job that produced it
    expect(ui.page.locator("#timeline")).to_have_attribute("data-loaded", "true")
    expect(ui.page.locator("#job-id")).to_have_text(job_id)
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["auditor"])


def test_settlement_page_shows_weights_proof_approvals_deposits_and_each_share(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
    tmp_path: Path,
) -> None:
    job_id = settled_job(env)
    st = env.call("GET", f"/v1/settlements/{job_id}", "auditor").json()
    history = env.call("GET", f"/v1/settlements/{job_id}/history", "auditor").json()["events"]
    proposal = env.call("GET", f"/v1/settlements/{job_id}/proposal", "auditor").json()
    assert st["total_deposited"] == 10 * ETHER + 7  # beyond 2**53: the page must not round it

    ui.open(f"#job/{job_id}")
    ui.use_key("auditor")
    expect(ui.page.locator("#job-id")).to_have_text(job_id)
    ui.page.click("#job-settlement-link")  # from the job to its settlement
    _loaded(ui, "settlement-section")
    expect(ui.page.locator("#st-weights-state")).to_have_attribute("data-set", "true")
    bars = ui.page.locator("#st-weights-svg rect.weight-bar")
    expect(bars).to_have_count(len(st["balances"]))
    shown = [(b.get_attribute("data-member"), int(b.get_attribute("data-bps") or -1)) for b in bars.all()]
    assert shown == [(b["member"], b["bps"]) for b in st["balances"]]
    expect(ui.page.locator("#st-weights-svg")).to_have_attribute("role", "img")
    widths = [float(b.get_attribute("width") or 0) for b in bars.all()]
    assert widths[0] < widths[1], "bob's larger weight draws the longer bar"

    expect(ui.page.locator("#st-deposited .amount")).to_have_text(f"{10 * ETHER + 7} wei")
    expect(ui.page.locator("#st-released .amount")).to_have_text(f"{st['total_released']} wei")
    for balance in st["balances"]:
        cells = ui.page.locator(f'#st-balances-body tr[data-member="{balance["member"]}"]')
        expect(cells.locator(".bps")).to_have_text(str(balance["bps"]))
        for column in ("entitled", "released", "releasable"):
            expect(cells.locator(f".{column} .amount")).to_have_text(f"{balance[column]} wei")
    assert st["balances"][1]["releasable"] > 0  # bob has not withdrawn: still to withdraw

    weights = proposal["weights"]
    expect(ui.page.locator("#st-record-hash")).to_have_text(weights["record_hash"])
    expect(ui.page.locator("#st-record-leaf")).to_have_text(weights["record_leaf"])
    expect(ui.page.locator("#st-record-root")).to_have_text(weights["root"])
    expect(ui.page.locator("#st-proof li")).to_have_count(len(weights["proof"]))
    expect(ui.page.locator("#st-leaf-verdict")).to_have_attribute("data-matches", "true")
    for approval in proposal["approvals"]:
        row = ui.page.locator(f'#st-approvals-body tr[data-party="{approval["party"]}"]')
        expect(row).to_have_attribute("data-signed", "true")
    events = ui.page.locator("#st-history-body tr.st-event")
    expect(events).to_have_count(len(history))
    assert [e.get_attribute("data-event") for e in events.all()] == [e["name"] for e in history]
    assert [e["name"] for e in history].count("RevenueDeposited") == 2
    ui.page.screenshot(path=str(tmp_path / "settlement.png"), full_page=True)
    assert _axe(ui) == []

    ui.page.click("#st-load-receipt")  # the contribution record's receipt, for verification in the browser
    expect(ui.page.locator("#bv-loaded")).to_contain_text(f"receipt of step {weights['seq']}")

    ui.page.set_viewport_size({"width": 360, "height": 780})
    ui.open(f"#settlement/{job_id}")
    _loaded(ui, "settlement-section")
    _no_horizontal_scroll(ui)
    ui.page.screenshot(path=str(tmp_path / "settlement-360.png"), full_page=True)
    assert _axe(ui) == []
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["auditor"])


def test_search_finds_the_job_by_each_handle_and_leads_to_its_pages(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
    tmp_path: Path,
) -> None:
    job_id = closed_job(env, 3)
    timeline = env.call("GET", f"/v1/jobs/{job_id}/timeline", "auditor").json()
    ui.page.set_viewport_size({"width": 1920, "height": 1080})
    ui.open()
    ui.use_key("auditor")
    expect(ui.page.locator("#search-form")).to_be_visible()

    # the acceptance: found by its model hash, the timeline shows every step and the close
    ui.page.fill("#search-q", MODEL_HASH)
    ui.page.keyboard.press("Enter")
    _loaded(ui, "search-section")
    hit = ui.page.locator(f'#search-body tr.hit[data-kind="model"][data-job-id="{job_id}"]')
    expect(hit).to_have_count(1)
    expect(hit).to_contain_text("ss_lr.model v1")
    ui.page.screenshot(path=str(tmp_path / "search-1920.png"), full_page=True)
    assert _axe(ui) == []
    hit.locator("a.hit-timeline").click()
    expect(ui.page.locator("#timeline")).to_have_attribute("data-loaded", "true")
    expect(ui.page.locator("#tl-gantt-svg rect.gantt-bar")).to_have_count(3)
    expect(ui.page.locator('#tl-records li.record[data-signatures="valid"]')).to_have_count(3)
    expect(ui.page.locator("#tl-close-verdict")).to_have_attribute("data-matches", "true")
    expect(ui.page.locator("#tl-close-steps")).to_have_text("3 / 3")

    for query, kind in (
        (timeline["steps"][2]["record_hash"], "record"),
        (timeline["steps"][0]["tx_hash"], "transaction"),
        (timeline["consents"][1]["tx_hash"], "transaction"),
        (ALICE, "member"),
        (job_id, "job"),
    ):
        ui.page.fill("#search-q", query)
        ui.page.click("#search-run")
        expect(ui.page.locator("#search-status")).to_contain_text(query)
        expect(
            ui.page.locator(f'#search-body tr.hit[data-kind="{kind}"][data-job-id="{job_id}"]')
        ).not_to_have_count(0)
    ui.page.locator(f'#search-body tr.hit[data-job-id="{job_id}"] a.hit-settlement').first.click()
    _loaded(ui, "settlement-section")
    expect(ui.page.locator("#st-weights-state")).to_have_attribute("data-set", "false")

    # a time range alone (the job was created within the last hour), from the form's UTC fields
    ui.page.click("#nav-search")
    ui.page.fill("#search-q", "")
    created = timeline["job"]["created_at"][:19]
    ui.page.fill("#search-since", created[:17] + "00")
    ui.page.click("#search-run")
    expect(ui.page.locator(f'#search-body tr.hit[data-job-id="{job_id}"]')).to_have_count(1)
    ui.page.locator(f'#search-body tr.hit[data-job-id="{job_id}"] a.job-link').click()
    expect(ui.page.locator("#job-id")).to_have_text(job_id)

    # a model hit leads to the models page, filtered to that hash
    ui.page.fill("#search-q", MODEL_HASH)
    ui.page.fill("#search-since", "")
    ui.page.click("#search-run")
    ui.page.locator("#search-body a.hit-models").click()
    _loaded(ui, "models-section")
    expect(ui.page.locator("#models-body tr.model-row")).to_have_count(1)
    ui.page.set_viewport_size({"width": 360, "height": 780})  # the models page on a phone
    _no_horizontal_scroll(ui)
    link = ui.page.locator("#models-body a.job-link").bounding_box()
    assert link is not None and link["x"] + link["width"] <= 360, (
        "the model's job is reached without scrolling"
    )
    ui.page.screenshot(path=str(tmp_path / "models-360.png"), full_page=True)
    assert _axe(ui) == []
    ui.page.set_viewport_size({"width": 1920, "height": 1080})

    # bad input: the API's 422, shown as such
    ui.page.fill("#search-q", "not a hash")
    ui.page.click("#search-run")
    expect(ui.page.locator("#error")).to_have_attribute("data-status", "422")
    expect(ui.page.locator("#error")).to_contain_text("invalid_request")

    ui.page.set_viewport_size({"width": 360, "height": 780})
    ui.open("#search?q=" + MODEL_HASH)
    _loaded(ui, "search-section")
    _no_horizontal_scroll(ui)
    box = ui.page.locator("#search-body a.hit-settlement").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 360, (
        "a result's links are reached without scrolling"
    )
    ui.page.screenshot(path=str(tmp_path / "search-360.png"), full_page=True)
    assert _axe(ui) == []
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["auditor"])


def test_a_member_who_is_no_party_finds_nothing_in_the_browser(env: Env, ui: Ui) -> None:  # noqa: F811
    job_id = closed_job(env, 2)
    env.stack.registry().register_member(CAROL)
    env.keys["carol"] = add_member_key(env.app.state.api_db, "carol", CAROL, "member")
    record_hash = env.call("GET", f"/v1/jobs/{job_id}/timeline", "auditor").json()["steps"][0]["record_hash"]
    ui.open()
    ui.use_key("carol")
    for query in (job_id, MODEL_HASH, record_hash, ALICE):
        ui.open("#search?q=" + query)
        _loaded(ui, "search-section")
        expect(ui.page.locator("#search-body tr")).to_have_count(0)
        expect(ui.page.locator("#search-status")).to_contain_text("Nothing found")
    ui.open("#models")
    _loaded(ui, "models-section")
    expect(ui.page.locator("#models-body tr")).to_have_count(0)
    ui.open(f"#settlement/{job_id}")
    expect(ui.page.locator("#error")).to_have_attribute("data-status", "404")
    expect(ui.page.locator("#st-balances-body tr")).to_have_count(0)
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["carol"])


def test_a_refreshed_job_list_keeps_the_keyboards_place(env: Env, ui: Ui) -> None:  # noqa: F811
    """The list is drawn anew when it reloads (two loads race when the landing page gives way to #jobs on a
    slow machine): the job link that had the focus has it again, so Enter still opens that job."""
    job_id = other_members_job(env, "ab")
    ui.open("#jobs")
    ui.use_key("auditor")
    link = ui.page.locator(f'#jobs-body tr[data-job-id="{job_id}"] a.job-link')
    link.focus()
    ui.page.dispatch_event("#status-filter", "change")  # a reload that does not move the focus itself
    expect(ui.page.locator("#jobs-range")).to_have_text("jobs 1\u20131")
    ui.page.wait_for_function(
        "id => document.activeElement?.isConnected"
        " && document.activeElement.closest('tr')?.dataset.jobId === id",
        arg=job_id,
    )
    ui.page.keyboard.press("Enter")
    expect(ui.page.locator("#job-id")).to_have_text(job_id)
