"""`secureflow up`'s embedded stack end to end: a job submitted through the API runs on the real SecretFlow
party workers, its steps are anchored, the anchoring service closes it on chain, and a receipt fetched from
the API verifies against the chain alone; the web console (chromium) shows the job's overview figures and its
timeline as the API answers them; the job is found by its model hash (the search leads to its timeline, every
step and the close), and the models page shows each model's on-chain hash equal to the API's."""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from leaks import scan_sinks, table_renderings
from playwright.sync_api import expect, sync_playwright
from sinks import LogCapture, capture_chain, chain_sinks, planted_chain_captures, sqlite_rows
from typer.testing import CliRunner

from secureflow.api.cli.main import app as cli_app
from secureflow.api.dev.up import EmbeddedStack, build_embedded, write_env, write_example
from secureflow.compute.consents import request_consents
from secureflow.compute.errors import ConsentRefusedError
from secureflow.compute.manifest import JobManifest
from secureflow.ledger.contracts import AuditLedgerClient, JobStatus
from secureflow.ledger.receipts import AuditBundle
from secureflow.ledger.records import job_id_for
from secureflow.ledger.verify import pin_from_options, verify_bundle, verify_receipt
from tools.live_server import LiveServer


def test_job_submitted_through_the_api_runs_and_is_anchored(tmp_path: Path) -> None:
    with LogCapture() as api_log:  # every log record of the API process (the stack runs in this one)
        _job_runs_and_is_anchored(tmp_path, api_log)


def _job_runs_and_is_anchored(tmp_path: Path, api_log: LogCapture) -> None:
    stack = build_embedded(tmp_path / "up")
    try:
        # What `secureflow up` prints to try: the example manifest over the demo's datasets.
        example = json.loads(write_example(stack, tmp_path / "up", rows=600).read_text())
        member = {"Authorization": f"Bearer {stack.keys['alice (member)']}"}
        auditor = {"Authorization": f"Bearer {stack.keys['auditor']}"}
        with LiveServer(stack.app) as server:
            submitted = requests.post(
                server.url + "/v1/jobs",
                json={"manifest": example},
                headers=member,
                timeout=120,
            )
            assert submitted.status_code == 201, submitted.text
            assert submitted.json()["execution"] == "handed_to_executor"
            job_id = submitted.json()["job"]["job_id"]

            deadline = time.monotonic() + 600
            while True:
                job = requests.get(f"{server.url}/v1/jobs/{job_id}", headers=auditor, timeout=60).json()
                steps = requests.get(
                    f"{server.url}/v1/jobs/{job_id}/steps", headers=auditor, timeout=60
                ).json()
                statuses = [item["chain_status"] for item in steps["items"]]
                if (
                    job["status"] == "completed"
                    and len(statuses) == 6
                    and set(statuses) == {"confirmed"}
                    and job["close_status"] == "confirmed"  # closed on chain by the anchoring service
                ):
                    break
                assert job["close_status"] != "failed", job
                assert job["status"] not in ("failed", "cancelled"), job
                assert time.monotonic() < deadline, (job, statuses)
                time.sleep(1)

            receipt = requests.get(
                f"{server.url}/v1/jobs/{job_id}/steps/3/receipt", headers=auditor, timeout=60
            )
            assert receipt.status_code == 200, receipt.text
            assert receipt.json()["record"]["algorithm"] == "ss_lr"
            # each party's own log of the job, read from its folder (scrubbed when its worker wrote it)
            logs = requests.get(f"{server.url}/v1/jobs/{job_id}/logs", headers=auditor, timeout=60)
            assert logs.status_code == 200, logs.text
            by_party = {p["party"]: p["lines"] for p in logs.json()["parties"]}
            assert set(by_party) == {"alice", "bob"}
            for party, lines in by_party.items():
                assert any(f"party {party}: step 3 (ss_lr) done" in line for line in lines), lines
            _commands_run_with_only_secureflow_env(stack, tmp_path, server.url, job_id)
            _console_shows_the_real_job(server.url, stack.keys["auditor"], job_id, tmp_path)
            bundle = requests.get(f"{server.url}/v1/jobs/{job_id}/bundle", headers=auditor, timeout=60)
            assert bundle.status_code == 200, bundle.text
        pin = pin_from_options(deployment=tmp_path / "up" / "deployment.json")  # what `secureflow up` wrote
        verdict = verify_receipt(receipt.json(), stack.chain.rpc_url, pin)
        assert verdict.ok, verdict
        # The bundle carries the job secret the API chose at submission: its salted manifest hash and
        # every step's params_hash are recomputed by the auditor.
        audited = verify_bundle(AuditBundle.model_validate_json(bundle.content), stack.chain.rpc_url, pin)
        assert audited.ok, audited.summary()
        assert audited.check("manifest_commitment").ok and audited.check("params_commitments").ok
        assert stack.store.get_job(job_id).chain_status == "confirmed"  # type: ignore[union-attr]
        # On chain: Open with both consents under the id the API derived, then closed with its 6 steps.
        ledger = AuditLedgerClient(stack.executor.ledger_contract)
        assert job_id_for(job["creator"], job["manifest_hash"], job["salt"]) == job_id
        on_chain = ledger.get_job(bytes.fromhex(job_id[2:]))
        assert (on_chain.status, on_chain.step_count) == (JobStatus.CLOSED, 6)
        assert on_chain.creator.lower() == job["creator"].lower()  # sent by alice's own worker
        assert all(ledger.has_consented(bytes.fromhex(job_id[2:]), p) for p in on_chain.parties)

        with LiveServer(stack.app) as server:
            _nobody_consents_for_bob(stack, server.url, example, member, ledger)
        _no_cell_value_on_chain_in_the_api_db_or_log(stack, tmp_path / "up", api_log)
    finally:
        stack.close()


def _console_shows_the_real_job(url: str, key: str, job_id: str, shots: Path) -> None:
    """The web console (Debian's chromium) on the job the SecretFlow workers ran: the overview's counts and
    one chart point per minute bucket of the API's answer; the timeline's every step (a Gantt bar and a
    record each, every party's signature verified by the API), both consents, each model with the hash
    the chain recorded, and the close on chain matching the API's final root. Screenshots in ``shots``."""
    headers = {"Authorization": f"Bearer {key}"}
    timeline = requests.get(f"{url}/v1/jobs/{job_id}/timeline", headers=headers, timeout=60).json()
    assert len(timeline["steps"]) == 6 and all(s["signatures_valid"] for s in timeline["steps"]), timeline
    assert all(s["duration_ms"] == s["finished_at_ms"] - s["started_at_ms"] for s in timeline["steps"])
    assert timeline["close"]["matches"] is True and timeline["close"]["step_count"] == 6, timeline["close"]
    assert all(c["consented"] and c["tx_hash"] for c in timeline["consents"]), timeline["consents"]
    assert timeline["models"] and all(m["on_chain_hash"] == m["model_hash"] for m in timeline["models"])
    model_hash = timeline["models"][0]["model_hash"]
    found = requests.get(f"{url}/v1/search", params={"q": model_hash}, headers=headers, timeout=60).json()
    assert ("model", job_id) in {(i["kind"], i["job_id"]) for i in found["items"]}, found
    overview = requests.get(f"{url}/v1/overview", headers=headers, timeout=60).json()
    assert overview["jobs_by_status"]["completed"] >= 1 and overview["backlog"]["pending"] == 0
    assert sum(b["anchored"] for b in overview["activity"]) >= 6
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "/ui")
            page.fill("#key-input", key)
            page.click("#key-use")
            expect(page.locator("#overview-section")).to_have_attribute("data-loaded", "true", timeout=60_000)
            for status, count in overview["jobs_by_status"].items():
                expect(page.locator(f'#ov-jobs [data-status="{status}"]')).to_have_text(str(count))
            points = page.locator("#ov-anchored-svg circle.pt")
            expect(points).to_have_count(len(overview["activity"]))
            assert [
                (p.get_attribute("data-start"), int(p.get_attribute("data-value") or -1))
                for p in points.all()
            ] == [(b["start"], b["anchored"]) for b in overview["activity"]]
            page.screenshot(path=str(shots / "console-overview-real-job.png"), full_page=True)
            # the acceptance: the job is found by its model hash, and the hit opens its timeline
            page.fill("#search-q", model_hash)
            page.click("#search-run")
            expect(page.locator("#search-section")).to_have_attribute("data-loaded", "true", timeout=60_000)
            hit = page.locator(f'#search-body tr.hit[data-kind="model"][data-job-id="{job_id}"]')
            expect(hit.first).to_be_visible()
            page.screenshot(path=str(shots / "console-search-real-job.png"), full_page=True)
            hit.first.locator("a.hit-timeline").click()
            expect(page.locator("#timeline")).to_have_attribute("data-loaded", "true", timeout=60_000)
            expect(page.locator("#job-id")).to_have_text(job_id)
            expect(page.locator("#tl-gantt-svg rect.gantt-bar")).to_have_count(6)
            expect(page.locator('#tl-records li.record[data-signatures="valid"]')).to_have_count(6)
            expect(page.locator('#tl-consents-body tr[data-consented="yes"]')).to_have_count(2)
            expect(page.locator("#tl-models-body tr")).to_have_count(len(timeline["models"]))
            for model in timeline["models"]:
                row = page.locator(f'#tl-models-body tr[data-model="{model["model_id"]}"]')
                expect(row).to_contain_text("recorded, same hash")
            expect(page.locator("#tl-close-verdict")).to_have_attribute("data-matches", "true")
            expect(page.locator("#tl-close-steps")).to_have_text("6 / 6")
            page.screenshot(path=str(shots / "console-timeline-real-job.png"), full_page=True)
            page.goto(url + "/ui#models")  # each model of the job: the chain's hash is the API's
            expect(page.locator("#models-section")).to_have_attribute("data-loaded", "true", timeout=60_000)
            rows = page.locator(f'#models-body tr.model-row[data-job-id="{job_id}"]')
            expect(rows).to_have_count(len(timeline["models"]))
            expect(
                page.locator(f'#models-body tr.model-row[data-job-id="{job_id}"][data-matches="true"]')
            ).to_have_count(len(timeline["models"]))
            page.screenshot(path=str(shots / "console-models-real-job.png"), full_page=True)
        finally:
            browser.close()


def _no_cell_value_on_chain_in_the_api_db_or_log(
    stack: EmbeddedStack, workdir: Path, api_log: LogCapture
) -> None:
    """Every cell of both parties (tests/leaks.py's renderings) against the chain the job ran on (every
    transaction's calldata and every log from genesis, decoded and raw), every row of every table of the
    stack's database (the API's tables and the ledger's), every log record of the API process and each
    party's job logs; and the
    scan sees a value planted in a copy of each of these sinks."""
    tables = [pd.read_csv(data / "customers.csv") for _address, data in stack.parties.values()]
    secrets = table_renderings(tables)
    chain = capture_chain(stack.chain.rpc_url)  # while the chain is up
    assert sum(len(b["transactions"]) for b in chain.blocks) > 10 and len(chain.logs) > 10
    job_logs = {
        f"{party} job logs": "\n".join(p.read_text() for p in sorted(data.parent.glob("joblogs/*.log")))
        for party, (_address, data) in stack.parties.items()
    }
    assert all("step 0 (psi) done" in text for text in job_logs.values())
    sinks = {
        **chain_sinks(chain),
        **sqlite_rows(workdir / "secureflow.db"),
        "api log": api_log.text(),
        **job_logs,
    }
    assert {"secureflow.db api_keys", "secureflow.db api_manifests", "secureflow.db step_records"} <= set(
        sinks
    ), sinks.keys()
    assert "createJob" in sinks["chain calldata"] and "anchorBatch" in sinks["chain calldata"]
    assert "BatchAnchored" in sinks["chain events"] and "job 0x" in sinks["api log"]
    assert scan_sinks(sinks, secrets) == {}
    # ... and the scan would see one planted in any of them: an id, a float as repr and as %.6f
    ident = int(tables[0]["id"].iloc[7])
    planted = [str(ident), repr(float(tables[1]["b1"].iloc[3])), f"{tables[0]['a1'].iloc[5]:.6f}"]
    for index, name in enumerate(sorted(n for n in sinks if not n.startswith("chain "))):
        value = planted[index % len(planted)]
        tampered = {**sinks, name: sinks[name] + f' {{"x": {value}}}'}
        assert scan_sinks(tampered, secrets) == {name: [value]}, name
    # on chain: an id as an extra calldata word, a float's repr as a string in calldata, an id as a word of
    # a log's data and as an indexed topic (planted in copies of the captured blocks and logs)
    for where, copy in planted_chain_captures(chain, ident, planted[1]).items():
        name, what = where.split(": ")
        value = planted[1] if what == "a string" else str(ident)
        assert scan_sinks(chain_sinks(copy), secrets) == {name: [value]}, where


def _commands_run_with_only_secureflow_env(
    stack: EmbeddedStack, tmp_path: Path, url: str, job_id: str
) -> None:
    """`up` writes secureflow.env: with only its variables (keys as 0600 files, never inline), the CLI reaches
    the API as alice, fetches the bundle, verifies it against the pinned deployment and reconciles the DB."""
    env_file = write_env(stack, tmp_path / "up", url)
    text = env_file.read_text()
    assert all(key not in text for key in (*stack.keys.values(), *stack.member_keys.values()))
    env = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in text.splitlines()
        if line.startswith("export ")
    )
    for name in ("SECUREFLOW_API_KEY_FILE", "SECUREFLOW_MEMBER_KEY_FILE"):
        assert Path(env[name]).stat().st_mode & 0o077 == 0, f"{env[name]} is readable by others"
    runner = CliRunner()
    status = runner.invoke(cli_app, ["job", "status", job_id, "--json"], env=env)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["job"]["creator"] == stack.parties["alice"][0]
    bundle = tmp_path / "bundle.json"
    fetched = runner.invoke(cli_app, ["job", "bundle", job_id, "--out", str(bundle)], env=env)
    assert fetched.exit_code == 0, fetched.output
    pinned = ["--deployment", env["SECUREFLOW_DEPLOYMENT"]]  # an auditor names the pin; the node from env
    verified = runner.invoke(cli_app, ["verify", str(bundle), *pinned], env=env)
    assert "VALID" in verified.output and "INVALID" not in verified.output, verified.output
    reconciled = runner.invoke(cli_app, ["audit", "reconcile", "--json"], env=env)
    assert reconciled.exit_code == 0, reconciled.output


def _nobody_consents_for_bob(
    stack: EmbeddedStack, url: str, example: dict[str, Any], member: dict[str, str], ledger: AuditLedgerClient
) -> None:
    """The attack of issue 11 (4): alice alone submitted table_statistics on bob's columns revealed to her,
    saving over bob's dataset, and the stack signed bob's consent with the key it held. Now bob's own worker
    checks his policy (the dev policy: his columns' statistics stay his) and refuses; the API answers 4xx
    before anything runs, nothing is created on chain, no file changes."""
    bob_data = stack.parties["bob"][1]
    before = {p.name: p.read_bytes() for p in bob_data.rglob("*") if p.is_file()}
    spy = dict(example, name="spy")
    spy["steps"] = [
        dict(example["steps"][0]),  # psi
        {
            "algorithm": "table_statistics",
            "params": {"reveal_to": ["alice"]},
            "inputs": {"table": "joined"},
            "outputs": {"report": "stats"},
        },
    ]
    refused = requests.post(f"{url}/v1/jobs", json={"manifest": spy}, headers=member, timeout=120)
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]["message"]
    assert "party 'bob'" in message and "step 1 (table_statistics): reveals to alice" in message
    refused_id = re.search(r"refused job (0x[0-9a-f]{64})", message).group(1)  # type: ignore[union-attr]
    assert ledger.get_job(bytes.fromhex(refused_id[2:])).status == JobStatus.NONE
    # over bob's dataset: refused by the manifest rules (outputs go to out/, never over an input)
    overwrite = dict(example, name="overwrite")
    overwrite["steps"] = [dict(example["steps"][0], save={"table": "customers.csv"})]
    bad = requests.post(f"{url}/v1/jobs", json={"manifest": overwrite}, headers=member, timeout=120)
    assert bad.status_code == 422 and "output folder, out/" in bad.json()["error"]["message"], bad.text
    # a file the first job saved (alice's out/scores.csv) is never overwritten either
    again = requests.post(f"{url}/v1/jobs", json={"manifest": example}, headers=member, timeout=120)
    assert again.status_code == 409 and "would overwrite 'out/scores.csv'" in again.text, again.text
    # bob's worker itself refuses (not only the API's pre-check), and refuses an id not of this manifest
    parsed = JobManifest.parse(spy)
    salt, job_secret = "0x" + "11" * 32, "0x" + "33" * 32
    alice = stack.parties["alice"][0]
    spy_id = job_id_for(alice, parsed.manifest_hash(job_secret), salt)
    ask = {
        "creator": alice,
        "salt": salt,
        "job_secret": job_secret,
        "parties": [alice, stack.parties["bob"][0]],
        "chain_id": stack.executor.services.client.chain_id,
        "ledger": ledger.address,
    }
    engine = stack.executor.engine
    with pytest.raises(ConsentRefusedError, match=r"party 'bob' refuses job .*reveals to alice"):
        request_consents(engine, parsed.model_dump(mode="json"), job_id=spy_id, **ask)
    with pytest.raises(ConsentRefusedError, match="not the id of this manifest"):
        request_consents(engine, example, job_id="0x" + "22" * 32, **ask)
    # nor can whoever writes the workers' requests get a createJob signed: not for a job a worker did not
    # consent to, and not by a party that is not the job's creator (bob consents to this one, alice does not)
    other = JobManifest.parse(dict(example, name="other")).model_dump(mode="json")
    other_id = job_id_for(alice, JobManifest.parse(other).manifest_hash(job_secret), salt)
    with pytest.raises(ConsentRefusedError, match="party 'alice' refuses"):
        request_consents(engine, other, job_id=other_id, **ask)
    sign = {
        "op": "create_job_tx",
        "consents": ["0x" + "00" * 65] * 2,
        "nonce": 0,
        "gas": 900_000,
        "gas_price": 0,
    }
    replies = engine.broadcast(
        {"alice": dict(sign, job_id=other_id), "bob": dict(sign, job_id=other_id)},
        timeout=60.0,
        what="forged",
    )
    assert not replies["alice"]["ok"] and "has not consented" in replies["alice"]["message"], replies
    assert not replies["bob"]["ok"] and "is not the creator" in replies["bob"]["message"], replies
    after = {p.name: p.read_bytes() for p in bob_data.rglob("*") if p.is_file()}
    assert after == before
