"""The console in a real browser (Debian's chromium, Playwright): the consortium overview, a job's timeline.

On data a real job produced on the session's anvil (`closed_job`: both parties' consents on chain, steps
signed by each party's key, anchored and confirmed by the real anchoring worker, a model anchored, the
job closed on chain, every event indexed), the page shows what the API answers: the overview's job
counts, one chart point per minute bucket the API returned (at its time, with its value), the backlog,
the last block and the failed jobs with their reasons; the timeline shows every step (a Gantt bar and a
record each, every party's signature verified), each consent with its transaction, the model with its
on-chain hash, and the close on chain matching the API's final root; the audit bundle downloads. Strings
from the API are rendered as text, never markup (a hostile job reason and manifest). The page works at
360 px wide and on a large screen, by keyboard, passes axe-core's WCAG 2 A/AA checks (axe-core from npm,
pinned in package-lock.json, copied into tests/api/a11y/ for the tests only: the API never serves it),
and calls nothing but its own origin. Screenshots go to the test's tmp folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from stack import step
from test_api_service import Env, env, manifest  # noqa: F401  (the live app fixture)
from test_console import closed_job
from test_web_ui import Ui, browser, other_members_job, ui  # noqa: F401  (the browser fixtures)

from secureflow.ledger.recorder import to_outbox

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).resolve().parent / "a11y" / "axe.min.js"
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def _overview_loaded(tab: Ui) -> None:
    expect(tab.page.locator("#overview-section")).to_have_attribute("data-loaded", "true")


def _timeline_loaded(tab: Ui) -> None:
    expect(tab.page.locator("#timeline")).to_have_attribute("data-loaded", "true")


def _failed_job_with_backlog(env: Env, reason: str) -> str:  # noqa: F811
    """A job of alice and bob with one record still pending (the backlog), then failed with ``reason``."""
    response = env.call("POST", "/v1/jobs", "member", json={"manifest": manifest("failing")})
    assert response.status_code == 201, response.text
    job_id = str(response.json()["job"]["job_id"])
    env.store.accept_records([to_outbox(step(job_id, 0))])
    env.store.update_job(job_id, status="failed", reason=reason)
    return job_id


def test_overview_shows_the_apis_counts_and_one_chart_point_per_bucket(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
    tmp_path: Path,
) -> None:
    closed_job(env, 3)
    failed = _failed_job_with_backlog(env, "step 0 (psi) failed: WorkerError: bob's node stopped")
    ui.open()
    ui.use_key("auditor")
    _overview_loaded(ui)
    api = env.call("GET", "/v1/overview?hours=6", "auditor").json()
    assert api["activity"], "the job's confirmed steps fall in the window"

    for status, count in api["jobs_by_status"].items():
        expect(ui.page.locator(f'#ov-jobs [data-status="{status}"]')).to_have_text(str(count))
    expect(ui.page.locator("#ov-jobs-total")).to_have_text(str(api["jobs_total"]))
    expect(ui.page.locator("#ov-pending")).to_have_text(str(api["backlog"]["pending"]))
    expect(ui.page.locator("#ov-oldest")).to_contain_text("ago")
    expect(ui.page.locator("#ov-last-block")).to_have_text(str(api["last_block"]["number"]))

    for chart, key in (
        ("#ov-anchored-svg circle.pt", "anchored"),
        ("#ov-latency-svg circle.pt", "latency_avg_seconds"),
        ("#ov-latency-svg line.pt-max", "latency_max_seconds"),
    ):
        points = ui.page.locator(chart)
        expect(points).to_have_count(len(api["activity"]))
        shown = [
            (p.get_attribute("data-start"), float(p.get_attribute("data-value") or "nan"))
            for p in points.all()
        ]
        assert shown == [(b["start"], float(b[key])) for b in api["activity"]], chart
    # the points sit at their buckets' times: left to right in time order, heights follow the values
    xs = [float(p.get_attribute("cx") or 0) for p in ui.page.locator("#ov-anchored-svg circle.pt").all()]
    assert xs == sorted(xs)
    expect(ui.page.locator("#ov-activity-body tr")).to_have_count(len(api["activity"]))

    row = ui.page.locator(f'#ov-attention-body tr[data-job-id="{failed}"]')
    expect(row.locator(".attention-reason")).to_have_text(
        "step 0 (psi) failed: WorkerError: bob's node stopped"
    )
    for account in api["accounts"]:
        cells = ui.page.locator(f'#ov-accounts-body tr[data-address="{account["address"]}"] td')
        expect(cells.nth(2)).to_have_text(", ".join(account["roles"]) or "no role")
    ui.page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

    row.locator("a.job-link").click()  # from the overview to the failed job
    expect(ui.page.locator("#job-id")).to_have_text(failed)
    expect(ui.page.locator("#job-reason")).to_have_text(
        "step 0 (psi) failed: WorkerError: bob's node stopped"
    )
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["auditor"])


def test_timeline_shows_every_step_the_consents_the_model_and_the_close(
    env: Env,  # noqa: F811
    ui: Ui,  # noqa: F811
    tmp_path: Path,
) -> None:
    job_id = closed_job(env, 3)
    api = env.call("GET", f"/v1/jobs/{job_id}/timeline", "auditor").json()
    ui.open(f"#job/{job_id}")
    ui.use_key("auditor")
    _timeline_loaded(ui)

    expect(ui.page.locator("#tl-manifest-name")).to_have_text(api["manifest"]["name"])
    expect(ui.page.locator(".manifest-steps li")).to_have_count(len(api["manifest"]["steps"]))
    for consent in api["consents"]:
        row = ui.page.locator(f'#tl-consents-body tr[data-party="{consent["party"]}"]')
        expect(row).to_have_attribute("data-consented", "yes")
        expect(row.locator("code.tx")).to_have_text(consent["tx_hash"])
    bars = ui.page.locator("#tl-gantt-svg rect.gantt-bar")
    expect(bars).to_have_count(3)
    assert [b.get_attribute("data-seq") for b in bars.all()] == ["0", "1", "2"]
    records = ui.page.locator("#tl-records li.record")
    expect(records).to_have_count(3)
    for item in api["steps"]:
        record = ui.page.locator(f'#tl-records li.record[data-seq="{item["seq"]}"]')
        expect(record).to_have_attribute("data-signatures", "valid")
        record.locator("summary").click()
        expect(record.locator("code.params-hash")).to_have_text(item["params_hash"])
        expect(record.locator("code.tx")).to_have_text(item["tx_hash"])
        parts = record.locator("tbody tr")
        expect(parts).to_have_count(2)
        for part in item["parties"]:
            expect(record.locator(f'tr[data-party="{part["party"]}"]')).to_have_attribute(
                "data-signature", "valid"
            )
    model = api["models"][0]
    model_row = ui.page.locator(f'#tl-models-body tr[data-model="{model["model_id"]}"]')
    expect(model_row.locator("code.model-hash")).to_have_text(model["model_hash"])
    expect(model_row).to_contain_text("recorded, same hash")
    expect(ui.page.locator("#tl-close-steps")).to_have_text("3 / 3")
    expect(ui.page.locator("#tl-close-root")).to_have_text(api["close"]["final_root"])
    expect(ui.page.locator("#tl-close-api-root")).to_have_text(api["close"]["api_final_root"])
    expect(ui.page.locator("#tl-close-verdict")).to_have_attribute("data-matches", "true")
    ui.page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)

    with ui.page.expect_download() as download:
        ui.page.click("#bundle-download")
    saved = tmp_path / "bundle.json"
    download.value.save_as(saved)
    bundle = json.loads(saved.read_text())
    assert bundle["job"]["job_id"] == job_id and len(bundle["receipts"]) == 3

    # a consent's transaction links to what it did: the search names the job and the event
    consent = api["consents"][0]
    ui.page.locator(f'#tl-consents-body tr[data-party="{consent["party"]}"] a.tx-link').click()
    hit = ui.page.locator(f'#search-body tr.hit[data-kind="transaction"][data-job-id="{job_id}"]')
    expect(hit.first).to_be_visible()
    expect(ui.page.locator("#search-q")).to_have_value(consent["tx_hash"])
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["auditor"])


def test_hostile_strings_from_the_api_render_as_text(env: Env, ui: Ui) -> None:  # noqa: F811
    hostile = manifest(HOSTILE)
    hostile["steps"][0]["params"]["key"] = HOSTILE  # a parameter value, shown in the manifest
    response = env.call("POST", "/v1/jobs", "member", json={"manifest": hostile})
    assert response.status_code == 201, response.text
    job_id = str(response.json()["job"]["job_id"])
    env.store.update_job(job_id, status="failed", reason=f"step 0 failed: {HOSTILE}")

    ui.open()
    ui.use_key("auditor")
    _overview_loaded(ui)
    row = ui.page.locator(f'#ov-attention-body tr[data-job-id="{job_id}"]')
    expect(row.locator(".attention-reason")).to_have_text(f"step 0 failed: {HOSTILE}")
    ui.open(f"#job/{job_id}")
    _timeline_loaded(ui)
    expect(ui.page.locator("#tl-manifest-name")).to_have_text(HOSTILE)
    expect(ui.page.locator(".manifest-steps code.params")).to_contain_text(json.dumps(HOSTILE))
    expect(ui.page.locator("#job-reason")).to_have_text(f"step 0 failed: {HOSTILE}")
    assert ui.page.locator("img").count() == 0, "an API string became markup"
    assert ui.page.evaluate("() => window.__pwned") is None
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["auditor"])


def _no_horizontal_scroll(tab: Ui) -> None:
    width = tab.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width}"


def _axe(tab: Ui) -> list[dict[str, Any]]:
    """axe-core's WCAG 2 A and AA violations on the page as it is now (the script is injected by the test
    over the DevTools protocol: the page itself never loads it)."""
    if tab.page.evaluate("() => typeof window.axe") != "object":
        tab.page.evaluate(AXE.read_text())
    result = tab.page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
        ".map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    return list(result)


def test_small_and_large_screens_keyboard_labels_and_axe(env: Env, ui: Ui, tmp_path: Path) -> None:  # noqa: F811
    job_id = closed_job(env, 2)
    _failed_job_with_backlog(env, "step 0 (psi) failed: WorkerError: bob's node stopped")
    ui.page.set_viewport_size({"width": 360, "height": 780})
    ui.open()
    ui.use_key("auditor")
    _overview_loaded(ui)
    expect(ui.page.locator("#ov-anchored-svg")).to_be_visible()
    _no_horizontal_scroll(ui)
    ui.page.screenshot(path=str(tmp_path / "overview-360.png"), full_page=True)
    assert _axe(ui) == []

    # keyboard: the navigation, then a job link, then a step record, all without a mouse
    ui.page.focus("#nav-overview")
    ui.page.keyboard.press("Tab")
    assert ui.page.evaluate("() => document.activeElement.id") == "nav-jobs"
    ui.page.keyboard.press("Enter")
    expect(ui.page.locator("#overview-section")).to_be_hidden()
    expect(ui.page.locator("#jobs-section")).to_be_visible()
    expect(ui.page.locator("#nav-jobs")).to_have_attribute("aria-current", "page")
    link = ui.page.locator(f'#jobs-body tr[data-job-id="{job_id}"] a.job-link')
    link.focus()
    ui.page.keyboard.press("Enter")
    _timeline_loaded(ui)
    summary = ui.page.locator('#tl-records li.record[data-seq="1"] summary')
    summary.focus()
    ui.page.keyboard.press("Enter")
    expect(ui.page.locator('#tl-records li.record[data-seq="1"] details')).to_have_attribute("open", "")
    _no_horizontal_scroll(ui)
    ui.page.screenshot(path=str(tmp_path / "timeline-360.png"), full_page=True)
    assert _axe(ui) == []

    # every control has a name; every chart is an image with a label
    unnamed = ui.page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
             .filter(e => !e.labels?.length && !e.getAttribute('aria-label') && !e.textContent.trim())
             .map(e => e.id)"""
    )
    assert unnamed == []
    for chart in ("#tl-gantt-svg",):
        expect(ui.page.locator(chart)).to_have_attribute("role", "img")
        labelled = ui.page.locator(chart).get_attribute("aria-labelledby")
        expect(ui.page.locator(f"#{labelled}")).not_to_be_empty()

    ui.page.set_viewport_size({"width": 1920, "height": 1080})
    ui.open()
    _overview_loaded(ui)
    _no_horizontal_scroll(ui)
    box = ui.page.locator("#ov-anchored-svg").bounding_box()
    assert box is not None and box["width"] > 600, "the chart uses the room a large screen gives"
    ui.page.screenshot(path=str(tmp_path / "overview-1920.png"), full_page=True)
    assert _axe(ui) == []
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["auditor"])


def test_axe_core_is_the_pinned_npm_package_and_never_served(env: Env) -> None:  # noqa: F811
    """The test-only copy of axe-core is the file of the version package-lock.json pins (byte for byte
    when node_modules has it), its licence is beside it, and the API serves no such file."""
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]["node_modules/axe-core"]
    assert json.loads((ROOT / "package.json").read_text())["devDependencies"]["axe-core"] == lock["version"]
    head = AXE.read_text()[:200]
    assert head.startswith(f"/*! axe v{lock['version']}")
    installed = ROOT / "node_modules" / "axe-core" / "axe.min.js"
    if installed.is_file():
        assert installed.read_bytes() == AXE.read_bytes()
    assert "Mozilla Public License" in (AXE.parent / "axe-core.LICENSE.txt").read_text()
    for path in ("/ui/axe.min.js", "/ui/a11y/axe.min.js", "/axe.min.js"):
        assert env.call("GET", path).status_code == 404


def test_a_member_sees_the_figures_of_its_own_jobs_only(env: Env, ui: Ui) -> None:  # noqa: F811
    mine = closed_job(env, 2)
    theirs = other_members_job(env, "cd")  # bob's and the service's: alice is no party
    env.store.update_job(theirs, status="failed", reason="step 0 (psi) failed: not alice's business")
    ui.open()
    ui.use_key("member")
    _overview_loaded(ui)
    expect(ui.page.locator("#ov-scope")).to_contain_text("Only the jobs you are party to")
    expect(ui.page.locator("#ov-jobs-total")).to_have_text("1")
    expect(ui.page.locator('#ov-jobs [data-status="completed"]')).to_have_text("1")
    expect(ui.page.locator('#ov-jobs [data-status="failed"]')).to_have_text("0")
    expect(ui.page.locator("#ov-attention-body tr")).to_have_count(0)
    expect(ui.page.locator("#ov-attention-empty")).to_be_visible()
    expect(ui.page.locator("#ov-anchored-svg circle.pt")).to_have_count(
        len(env.call("GET", "/v1/overview", "member").json()["activity"])
    )
    ui.open(f"#job/{theirs}")
    expect(ui.page.locator("#error")).to_have_attribute("data-status", "404")
    expect(ui.page.locator("#tl-records li")).to_have_count(0)
    expect(ui.page.locator("#tl-consents-body tr")).to_have_count(0)
    ui.open(f"#job/{mine}")
    _timeline_loaded(ui)
    expect(ui.page.locator("#tl-records li.record")).to_have_count(2)
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["member"])
