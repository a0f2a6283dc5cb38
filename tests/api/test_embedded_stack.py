"""`secureflow up`'s embedded stack end to end: a job submitted through the API runs on the real SecretFlow
party workers, its steps are anchored, the anchoring service closes it on chain, and a receipt fetched from
the API verifies against the chain alone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

from secureflow.api.dev.testing import LiveServer
from secureflow.api.dev.up import build_embedded, write_example
from secureflow.ledger.contracts import AuditLedgerClient, JobStatus
from secureflow.ledger.receipts import AuditBundle
from secureflow.ledger.records import job_id_for
from secureflow.ledger.verify import pin_from_options, verify_bundle, verify_receipt


def test_job_submitted_through_the_api_runs_and_is_anchored(tmp_path: Path) -> None:
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
        assert all(ledger.has_consented(bytes.fromhex(job_id[2:]), p) for p in on_chain.parties)
    finally:
        stack.close()
