"""The auditors' web page (``/ui``) in a real browser: Debian's chromium driven by Playwright.

Against the live app of tests/api/test_api_service.py (real anvil, SQLite and
PostgreSQL, a key per role): steps anchored and confirmed by the real anchoring
worker show as confirmed with their transaction; Verify fetches the receipt and
posts it to ``/v1/verify`` ("valid", every check passed); a record altered in the
database afterwards verifies "invalid" and the page names the failing check; a
bad key shows the 401 error; a member key does not see another member's job;
pagination follows the API's. The page loads and calls nothing but its own
origin, under a strict Content-Security-Policy, and the key stays in the tab's
sessionStorage (never in a URL).

Chromium must be installed (``scripts/bootstrap.sh`` installs Debian's package):
without it these tests fail, they do not skip. Playwright never downloads a
browser here (``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1``; nobody runs ``playwright install``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import update
from stack import BOB, anchor_and_index, create_job_on_chain, step
from test_api_service import SERVICE, Env, env, submit  # noqa: F401  (the live app fixture)

from secureflow.api.server.routes.docs import DOCS_CONTENT_SECURITY_POLICY
from secureflow.api.server.routes.ui import ASSETS, CONTENT_SECURITY_POLICY
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.store.models import JobOrm, StepRecordOrm
from secureflow.ledger.store.schemas import NewJob

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 30_000  # the machine is shared: generous, the assertions still wait only as long as needed
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless; a missing or broken browser fails the tests (never a skip)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/bootstrap.sh (it installs Debian's chromium package, "
            "which the web UI tests drive with Playwright)"
        )
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except PlaywrightError as exc:
            pytest.fail(f"{CHROMIUM} does not start ({exc}): run scripts/bootstrap.sh to (re)install it")
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Ui:
    """One browser tab on the live app, recording every request it makes and every console message."""

    env: Env
    page: Page
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def open(self, fragment: str = "") -> None:
        self.page.goto(self.env.url + "/ui" + fragment)

    def use_key(self, who: str | None = None, key: str | None = None) -> None:
        self.page.fill("#key-input", key if key is not None else self.env.keys[str(who)])
        self.page.click("#key-use")

    def job_row(self, job_id: str) -> Locator:
        return self.page.locator(f'#jobs-body tr[data-job-id="{job_id}"]')

    def assert_only_own_origin_and_no_key_in_urls(self, key: str) -> None:
        origin = urlsplit(self.env.url)
        assert self.requests, "the page made no request"
        for url in self.requests:
            parts = urlsplit(url)
            assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), url
            assert key not in url, "the API key appeared in a URL"
        assert key not in self.page.url
        refused = [m for m in self.console if "Content Security Policy" in m or "Refused to" in m]
        assert not refused, refused


@pytest.fixture
def ui(browser: Browser, env: Env) -> Iterator[Ui]:  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    tab = Ui(env, page)
    page.on("request", lambda request: tab.requests.append(request.url))
    page.on("console", lambda message: tab.console.append(f"{message.type}: {message.text}"))
    try:
        yield tab
    finally:
        context.close()


def anchored_job(env: Env, steps: int) -> str:  # noqa: F811
    """A job submitted by a member, its steps accepted through the service route and confirmed on chain."""
    job_id = submit(env, "web")
    job = env.call("GET", f"/v1/jobs/{job_id}", "auditor").json()
    create_job_on_chain(  # with both parties' consents
        env.stack, job_id, job["manifest_hash"], job["salt"], creator=job["creator"]
    )
    for seq in range(steps):
        response = env.call(
            "POST",
            f"/v1/jobs/{job_id}/steps",
            "service",
            json=step(job_id, seq, signed=True).model_dump(mode="json"),
        )
        assert response.status_code == 201, response.text
    anchor_and_index(env.stack, env.store)
    return job_id


def tamper(env: Env, job_id: str, seq: int) -> None:  # noqa: F811
    """Alter a stored record after it was anchored (as tests/ledger/test_reconcile.py does)."""
    forged = step(job_id, seq).model_copy(update={"algorithm": "ss_xgb"})
    with env.store.engine.begin() as conn:
        conn.execute(
            update(StepRecordOrm)
            .where(StepRecordOrm.job_id == job_id, StepRecordOrm.seq == seq)
            .values(record_json=forged.canonical_json().decode())
        )


def other_members_job(env: Env, tag: str) -> str:  # noqa: F811
    """A job alice (the ``member`` key) is not party to."""
    job_id = "0x" + tag * 32
    env.store.create_job(
        NewJob(job_id=job_id, manifest_hash="0x" + "cd" * 32, creator=BOB, parties=[BOB, SERVICE])
    )
    return job_id


# -- in the browser ---------------------------------------------------------------------------------


def test_auditor_sees_confirmed_steps_verifies_and_catches_tampering(env: Env, ui: Ui) -> None:  # noqa: F811
    job_id = anchored_job(env, 3)
    steps = env.call("GET", f"/v1/jobs/{job_id}/steps", "auditor").json()["items"]
    assert {s["chain_status"] for s in steps} == {"confirmed"}

    ui.open()
    expect(ui.page.locator("#jobs-section")).to_be_hidden()  # nothing without a key
    ui.use_key("auditor")
    expect(ui.page.locator("#whoami-role")).to_have_text("auditor")
    row = ui.job_row(job_id)
    expect(row).to_be_visible()
    expect(row.locator(".status").first).to_have_text("running")
    row.locator("a.job-link").click()

    expect(ui.page.locator("#job-id")).to_have_text(job_id)
    assert ui.page.url.endswith(f"/ui#job/{job_id}")
    rows = ui.page.locator("#steps-body tr.step-row")
    expect(rows).to_have_count(3)
    for item in steps:
        seq_row = ui.page.locator(f'#steps-body tr.step-row[data-seq="{item["seq"]}"]')
        expect(seq_row.locator(".chain-status")).to_have_text("confirmed")
        expect(seq_row.locator(".tx-hash code")).to_have_attribute("title", item["tx_hash"])
        expect(seq_row.locator(".batch code")).to_have_attribute("title", item["batch_id"])
        expect(seq_row.locator(".block")).to_have_text(str(item["block_number"]))

    api_verdict = env.call(
        "POST",
        "/v1/verify",
        "auditor",
        json=env.call("GET", f"/v1/jobs/{job_id}/steps/1/receipt", "auditor").json(),
    ).json()
    ui.page.get_by_role("button", name="Verify step 1").click()
    verdict = ui.page.locator('tr[data-verdict-for="1"] .verdict')
    expect(verdict).to_have_attribute("data-verdict", "valid")
    expect(verdict.locator(".verdict-title")).to_have_text("valid")
    checks = verdict.locator("li.check")
    expect(checks).to_have_count(len(api_verdict["checks"]))
    assert [c.get_attribute("data-check") for c in checks.all()] == [c["name"] for c in api_verdict["checks"]]
    assert {c.get_attribute("data-status") for c in checks.all()} == {"passed"}
    expect(verdict.locator(".verdict-pinned")).to_contain_text(
        "verified against this API's configured deployment"
    )

    tamper(env, job_id, 2)
    ui.page.get_by_role("button", name="Verify step 2").click()
    bad = ui.page.locator('tr[data-verdict-for="2"] .verdict')
    expect(bad).to_have_attribute("data-verdict", "invalid")
    expect(bad.locator(".verdict-title")).to_have_text("invalid")
    expect(bad.locator('li[data-check="record_hash"]')).to_have_attribute("data-status", "failed")
    expect(bad.locator(".verdict-failed")).to_contain_text("record_hash")
    expect(bad.locator('li[data-check="record_hash"] .check-detail')).not_to_be_empty()
    # the untouched step still verifies: verified again after the tampering, not the old verdict re-read
    verdict.evaluate("node => node.setAttribute('data-stale', 'before-tampering')")
    with ui.page.expect_response(
        lambda r: r.url.endswith("/v1/verify") and r.request.method == "POST"
    ) as fresh_response:
        ui.page.get_by_role("button", name="Verify step 1").click()
    assert fresh_response.value.request.post_data_json["seq"] == 1  # step 1's receipt, fetched again
    assert fresh_response.value.json()["ok"] is True
    expect(verdict).not_to_have_attribute("data-stale", "before-tampering")  # a new verdict was rendered
    expect(verdict).to_have_attribute("data-verdict", "valid")
    assert {c.get_attribute("data-status") for c in verdict.locator("li.check").all()} == {"passed"}

    key = env.keys["auditor"]
    assert ui.page.evaluate("() => sessionStorage.getItem('secureflow.apiKey')") == key
    assert ui.page.evaluate("() => localStorage.length") == 0
    assert key not in ui.page.content()
    ui.assert_only_own_origin_and_no_key_in_urls(key)

    ui.page.click("#key-forget")
    expect(ui.page.locator("#jobs-section")).to_be_hidden()
    expect(ui.page.locator("#job-section")).to_be_hidden()
    assert ui.page.evaluate("() => sessionStorage.length") == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_bad_key_shows_the_401_error(env: Env, ui: Ui) -> None:  # noqa: F811
    ui.open()
    ui.use_key(key="sfk_not-a-real-key")
    error = ui.page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("data-status", "401")
    expect(error.locator(".error-title")).to_contain_text("401 unauthorized")
    expect(error.locator(".error-message")).to_contain_text("the API key is unknown or revoked")
    expect(error.locator(".error-hint")).to_contain_text("paste a valid API key")
    expect(error.locator(".request-id")).to_have_text(re.compile(r"^[0-9a-f]{32}$"))
    expect(ui.page.locator("#jobs-section")).to_be_hidden()
    assert ui.page.evaluate("() => sessionStorage.length") == 0  # a refused key is not kept
    ui.assert_only_own_origin_and_no_key_in_urls("sfk_not-a-real-key")

    ui.use_key("auditor")  # a good key afterwards clears the error
    expect(ui.page.locator("#jobs-section")).to_be_visible()
    expect(error).to_be_hidden()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_member_sees_only_its_jobs(env: Env, ui: Ui, browser: Browser) -> None:  # noqa: F811
    mine = submit(env, "alice's")
    theirs = other_members_job(env, "ab")
    ui.open()
    ui.use_key("member")
    expect(ui.page.locator("#whoami-role")).to_have_text("member")
    expect(ui.job_row(mine)).to_be_visible()
    expect(ui.page.locator("#jobs-body tr")).to_have_count(1)
    expect(ui.job_row(theirs)).to_have_count(0)

    ui.open(f"#job/{theirs}")  # a direct link to the other member's job: the API answers 404
    error = ui.page.locator("#error")
    expect(error).to_have_attribute("data-status", "404")
    expect(error.locator(".error-message")).to_contain_text(f"no job {theirs} visible to you")
    expect(ui.page.locator("#job-meta dd")).to_have_count(0)
    expect(ui.page.locator("#steps-body tr")).to_have_count(0)

    auditor = browser.new_context().new_page()  # another tab with its own sessionStorage
    try:
        auditor.goto(env.url + "/ui")
        auditor.fill("#key-input", env.keys["auditor"])
        auditor.click("#key-use")
        expect(auditor.locator("#jobs-body tr")).to_have_count(2)
        expect(auditor.locator(f'tr[data-job-id="{theirs}"]')).to_be_visible()
    finally:
        auditor.context.close()
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["member"])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pages_follow_the_api_and_pending_steps_cannot_be_verified(env: Env, ui: Ui) -> None:  # noqa: F811
    jobs = [other_members_job(env, f"{n:02x}") for n in range(1, 24)]  # 23 jobs: pages of 20
    busy = jobs[0]
    env.store.accept_records([to_outbox(step(busy, seq)) for seq in range(53)])  # pending: pages of 50
    quarantined = env.store.get_record(busy, 1)
    assert quarantined is not None
    env.store.mark_record_failed(quarantined.id, "quarantined: its stored leaf is not the leaf of its record")
    stale = jobs[-1]  # the newest: on the first page; running, and has not moved for an hour: stuck
    env.store.accept_records([to_outbox(step(stale, 0))])
    with env.store.engine.begin() as conn:
        an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
        conn.execute(update(JobOrm).where(JobOrm.job_id == stale).values(updated_at=an_hour_ago))
    ended = jobs[1]
    env.store.update_job(
        ended, status="failed", reason="step 1 (ss_lr) failed: WorkerError: bob's node stopped"
    )
    ui.open()
    ui.use_key("auditor")
    body = ui.page.locator("#jobs-body tr")
    expect(body).to_have_count(20)
    expect(ui.page.locator(f'#jobs-body tr[data-job-id="{stale}"] .status-stuck')).to_have_text("stuck")
    expect(ui.page.locator("#jobs-body .status-stuck")).to_have_count(1)
    expect(ui.page.locator("#jobs-newer")).to_be_disabled()
    expect(ui.page.locator("#jobs-range")).to_have_text("jobs 1\u201320")
    ui.page.click("#jobs-older")
    expect(body).to_have_count(3)
    expect(ui.page.locator("#jobs-range")).to_have_text("jobs 21\u201323")
    expect(ui.page.locator("#jobs-older")).to_be_disabled()
    listed = env.call("GET", "/v1/jobs?limit=20&offset=20", "auditor").json()["items"]
    assert [r.get_attribute("data-job-id") for r in body.all()] == [j["job_id"] for j in listed]
    ui.page.click("#jobs-newer")
    expect(body).to_have_count(20)

    ui.page.select_option("#status-filter", "completed")
    expect(body).to_have_count(0)
    expect(ui.page.locator("#jobs-empty")).to_be_visible()
    ui.page.select_option("#status-filter", "")
    expect(body).to_have_count(20)

    ui.open(f"#job/{ended}")
    expect(ui.page.locator("#job-reason")).to_have_text(
        "step 1 (ss_lr) failed: WorkerError: bob's node stopped"
    )
    expect(ui.page.locator("#job-stuck")).to_have_count(0)
    ui.open(f"#job/{stale}")
    expect(ui.page.locator("#job-stuck")).to_be_visible()
    ui.open(f"#job/{busy}")
    steps = ui.page.locator("#steps-body tr.step-row")
    expect(steps).to_have_count(50)
    expect(ui.page.locator("#steps-prev")).to_be_disabled()
    failed = ui.page.locator('#steps-body tr.step-row[data-seq="1"]')
    expect(failed.locator(".failure-reason")).to_have_text(
        "quarantined: its stored leaf is not the leaf of its record"
    )
    expect(ui.page.locator("#steps-body .failure-reason")).to_have_count(1)
    first = ui.page.locator('#steps-body tr.step-row[data-seq="0"]')
    expect(first.locator(".chain-status")).to_have_text("pending")
    expect(first.get_by_role("button", name="Verify step 0")).to_be_disabled()
    expect(first.locator(".tx-hash")).to_have_text("\u2013")
    ui.page.click("#steps-next")
    expect(steps).to_have_count(3)
    expect(ui.page.locator("#steps-range")).to_have_text("steps 50\u201352")
    expect(ui.page.locator("#steps-next")).to_be_disabled()
    ui.page.click("#steps-prev")
    expect(steps).to_have_count(50)
    ui.page.click("#job-back")
    expect(ui.page.locator("#jobs-section")).to_be_visible()
    ui.assert_only_own_origin_and_no_key_in_urls(env.keys["auditor"])


# -- over plain HTTP ----------------------------------------------------------------------------------

_SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML namespace name, never fetched
_EXAMPLE_NODE = "http://127.0.0.1:8545"  # the example node URL of "Verify in my browser", never fetched


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_ui_has_a_strict_csp_and_loads_nothing_from_elsewhere(env: Env) -> None:  # noqa: F811
    page = requests.get(env.url + "/ui", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", name  # no 'unsafe-inline', no other origin
    assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"

    referenced = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assets = sorted({r for r in referenced if not r.startswith("#")})
    assert assets == sorted(p for p in ASSETS if p != "/ui"), "every file the page loads is served here"
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", page.text), "no inline script (the CSP forbids it)"
    assert " style=" not in page.text and "<style" not in page.text, "no inline style"
    # our own files name no other origin; the bundled libraries (verify-lib.js) mention URLs in their
    # error messages only, and the page's network log is checked in the browser tests (this origin only)
    own = [a for a in assets if a != "/ui/verify-lib.js"]
    for text in [page.text] + [requests.get(env.url + a, timeout=30).text for a in own]:
        assert not re.search(
            r"https?://|(?:src|href)=\"//|url\(|@import",
            text.replace(_SVG_NAMESPACE, "").replace(_EXAMPLE_NODE, ""),
        )
    bundle = requests.get(env.url + "/ui/verify-lib.js", timeout=30).text
    assert not re.search(r"\bimport\(|importScripts|new Worker|XMLHttpRequest|WebSocket\(", bundle)
    for path in assets:
        response = requests.get(env.url + path, timeout=30)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        again = requests.get(env.url + path, headers={"If-None-Match": response.headers["etag"]}, timeout=30)
        assert again.status_code == 304 and again.content == b"", path
    for script in ("/ui/app.js", "/ui/verify.js"):
        js = requests.get(env.url + script, timeout=30)
        assert js.headers["content-type"].startswith("text/javascript")
        assert ".innerHTML" not in js.text and "insertAdjacentHTML" not in js.text and "eval(" not in js.text
        assert (
            "localStorage" not in js.text and "console." not in js.text
        )  # the key: sessionStorage only, no logs

    missing = requests.get(env.url + "/ui/secrets.txt", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert "/ui" not in env.call("GET", "/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("path", "rendered"),
    [("/docs", "#swagger-ui .opblock"), ("/redoc", "#redoc [data-section-id^='tag/']")],
)
def test_api_docs_pages_render_offline_from_this_origin(
    env: Env,  # noqa: F811
    browser: Browser,
    path: str,
    rendered: str,
) -> None:
    """Swagger UI and ReDoc come from files served here (copied from the pinned npm packages), not a CDN:
    with every other origin cut off, each page renders the API's operations, and the CSP refuses nothing."""
    context = browser.new_context()
    elsewhere: list[str] = []
    origin = urlsplit(env.url)

    def only_here(route: Any) -> None:
        parts = urlsplit(route.request.url)
        if (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc) or parts.scheme in ("data", "blob"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_here)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        response = page.goto(env.url + path)
        assert response is not None and response.status == 200
        assert response.headers["content-security-policy"] == DOCS_CONTENT_SECURITY_POLICY
        page.wait_for_selector(rendered, timeout=60_000)
        assert page.locator(rendered).count() >= 5, f"{path} rendered too few operations"
        assert "secureflow audit API" in page.content()
        assert elsewhere == [], f"{path} tried to load from another origin: {elsewhere}"
        refused = [m for m in console if "Content Security Policy" in m or "Refused to" in m]
        # ReDoc's bundle always tries its "API docs by Redocly" logo from cdn.redoc.ly: the CSP blocks it
        # before any request is made (``elsewhere`` is empty) and the page hides the broken image
        refused = [m for m in refused if "https://cdn.redoc.ly/redoc/logo-mini.svg" not in m]
        assert refused == [], refused
    finally:
        context.close()
