"""The web page's bundle checks (``api/server/web/verify.js`` verifyBundle) on odd bundles, run by node.

The browser tests (tests/api/test_web_ui_browser_bundle.py) compare the page with ``secureflow verify`` on
real jobs; this one runs the same verify.js and verify-lib.js files in node (no browser: fast) against the
session's anvil, on bundles no API writes: seqs missing, repeated, beyond, negative, a string, a boolean,
a float, absent; receipts of another job, repeated, missing; records differing from their receipt; a
manifest whose steps are not a list, with a step that is no object or has no params; non-ASCII and
quoted strings; no manifest, no job secret; a version-1 bundle. The job is on no chain, so the chain's
checks say so. Each bundle check (name, status, detail), the summary and the warnings equal
``verify_bundle``'s: the details name Python values as Python prints them.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from stack import ALICE, LedgerStack

from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.receipts import AuditBundle
from secureflow.ledger.records import canonical_hash, commitment
from secureflow.ledger.verify import PinnedDeployment, verify_bundle

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "api" / "server" / "web"
JOB = "0x" + "11" * 32
SECRET = "0x" + "22" * 32
SOURCE = "the deployment JSON you gave"

HARNESS = """
const fs = require("fs");
const vm = require("vm");
globalThis.window = globalThis;
const [web, deploymentPath, casesPath, rpcUrl, source] = process.argv.slice(2);
vm.runInThisContext(fs.readFileSync(web + "/verify-lib.js", "utf8"));
vm.runInThisContext(fs.readFileSync(web + "/verify.js", "utf8"));
const V = window.SecureflowVerify;
(async () => {
  const pin = V.pinFromDeployment(fs.readFileSync(deploymentPath, "utf8"), source);
  const out = [];
  for (const bundle of JSON.parse(fs.readFileSync(casesPath, "utf8"))) {
    const v = await V.verifyBundle(bundle, rpcUrl, pin, 1);
    out.push({ checks: v.checks, summary: v.summary, warnings: v.warnings, ok: v.ok });
  }
  process.stdout.write(JSON.stringify(out));
})().catch((err) => { process.stderr.write(String(err.stack || err)); process.exit(1); });
"""

MANIFEST: dict[str, Any] = {
    "name": 'odd \u00e9t\u00e9 \u2028 it\'s "quoted"',
    "steps": [{"params": {"k": i}} for i in range(3)] + ["not an object", {"no": "params"}],
}


def _params(seq: int) -> Any:
    step = MANIFEST["steps"][seq]
    return step.get("params", {}) if isinstance(step, dict) else None


def _receipt(seq: int, record: dict[str, Any], job: str = JOB) -> dict[str, Any]:
    return {
        "version": 2,
        "chain_id": 1337,
        "contract": ALICE,
        "job_id": job,
        "seq": seq,
        "record": record,
        "record_hash": "0x" + "33" * 32,
        "leaf": "0x" + "44" * 32,
        "proof": [],
        "batch_root": "0x" + "55" * 32,
        "batch_id": "0x" + "66" * 32,
        "tx_hash": "0x" + "77" * 32,
        "block_number": 1,
        "block_hash": "0x" + "88" * 32,
        "anchorer": ALICE,
        "status": "confirmed",
    }


def _bundle(*, salted: bool = True) -> dict[str, Any]:
    records = [
        {"seq": s, "algorithm": "psi", "params_hash": commitment(_params(s), SECRET)} for s in range(5)
    ]
    bundle: dict[str, Any] = {
        "version": 2,
        "manifest": copy.deepcopy(MANIFEST),
        "job_secret": SECRET,
        "job": {
            "job_id": JOB,
            "manifest_hash": commitment(MANIFEST, SECRET) if salted else canonical_hash(MANIFEST),
            "creator": ALICE,
            "parties": [ALICE],
            "status": "completed",
            "chain_status": "confirmed",
        },
        "records": records,
        "receipts": [_receipt(r["seq"], copy.deepcopy(r)) for r in records],
    }
    if not salted:
        del bundle["job_secret"]
    return bundle


def _cases() -> list[dict[str, Any]]:
    cases = [_bundle(), _bundle(salted=False)]

    def edit(change: Any) -> None:
        bundle = _bundle()
        change(bundle)
        cases.append(bundle)

    for seq in (7, 1, -1, "2", None, True, 1.5):
        edit(lambda b, seq=seq: b["records"][2].__setitem__("seq", seq))
    edit(lambda b: b["records"][2].pop("seq"))
    edit(lambda b: b["records"][1].__setitem__("x", [1, {"a": None, "b": "it's", "c": False}]))
    edit(lambda b: b["receipts"][1].__setitem__("job_id", "0x" + "99" * 32))
    edit(lambda b: b["receipts"].append(copy.deepcopy(b["receipts"][0])))
    edit(lambda b: b["receipts"].pop(0))
    edit(lambda b: b["records"][0].__setitem__("params_hash", "0x" + "00" * 32))
    edit(lambda b: b.pop("manifest"))
    edit(lambda b: b["manifest"].__setitem__("extra", 1))
    edit(lambda b: b.__setitem__("version", 1))

    def steps_not_a_list(b: dict[str, Any]) -> None:
        b["manifest"]["steps"] = {"a": 1}
        b["job"]["manifest_hash"] = commitment(b["manifest"], SECRET)

    edit(steps_not_a_list)

    def many_missing(b: dict[str, Any]) -> None:
        b["records"] += [{"seq": s} for s in range(7, 20)]

    edit(many_missing)
    return cases


def test_verify_js_bundle_checks_equal_verify_bundle_on_odd_bundles(
    ledger_stack: LedgerStack, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed: run scripts/bootstrap.sh")
    cases = _cases()
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "harness.js").write_text(HARNESS)
    files = [str(tmp_path / "harness.js"), str(WEB), str(deployment), str(tmp_path / "cases.json")]
    ran = subprocess.run(
        [node, *files, ledger_stack.rpc_url, SOURCE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    shown = json.loads(ran.stdout)
    pin = PinnedDeployment.of_deployment(ledger_stack.deployment, source=SOURCE)
    assert len(shown) == len(cases)
    for bundle, js in zip(cases, shown, strict=True):
        expected = verify_bundle(AuditBundle.model_validate(bundle), ledger_stack.rpc_url, pin)
        assert js["checks"] == [c.model_dump() for c in expected.checks], json.dumps(bundle)[:300]
        assert js["summary"] == expected.summary()
        assert js["warnings"] == expected.warnings
        assert js["ok"] is False and not expected.ok
        assert expected.check("job_header").status == "failed"  # the job is on no chain
