"""`secureflow settle` end to end on a real anvil and ledger database (SQLite and PostgreSQL), no mocks:
propose -> anchor (the real pipeline) -> approve by both members -> set-weights -> deposit -> balances
-> withdraw -> history, and the denials (not anchored yet, missing approval, non-member, twice, a job
still running, forged or foreign approval files, a tampered proposal), each changing nothing on chain.
The CLI goes through the same settlement service as the API (tests/api/test_settlement_routes.py)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import typer
from eth_account import Account
from leaks import numeric_leaks
from stack import (
    ALICE,
    BOB,
    LedgerStack,
    accept,
    make_anchorer,
    new_job,
    open_job_on_chain,
    run_until_settled,
)
from typer.testing import CliRunner, Result
from web3 import Web3

from secureflow.api.cli.settle import parse_amount, settle_app
from secureflow.api.server.app import create_app
from secureflow.api.server.db import ApiDb
from secureflow.api.server.serve import add_member_key
from secureflow.api.server.settings import ApiSettings
from secureflow.ledger.artifacts import load_artifact
from secureflow.ledger.chain import TransactionSender
from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS
from secureflow.ledger.errors import LedgerError
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.settlement.contribution import ContributionProposal, load_inputs, prepare_contribution
from secureflow.ledger.settlement.weights import allocate
from secureflow.ledger.store.sql import SqlLedgerStore
from tools.live_server import LiveServer

ADMIN_KEY, ALICE_KEY, BOB_KEY = DEV_PRIVATE_KEYS[0], DEV_PRIVATE_KEYS[1], DEV_PRIVATE_KEYS[2]
OUTSIDER_KEY = DEV_PRIVATE_KEYS[4]
TEST_ARTIFACTS = Path(__file__).resolve().parents[2] / "contracts" / "artifacts" / "test"
METRICS = {"full": 0.8137, ALICE: 0.7901, BOB: 0.6523}  # marginals 0.0236 and 0.1614
EXPECTED_BPS = [1275, 8725]


class Settle:
    """Runs `settle` commands with the SECUREFLOW_* environment of one test."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, key: str | None = None, ok: bool = True, code: int = 1) -> Result:
        env = dict(self.env)
        if key is not None:
            env["SECUREFLOW_MEMBER_KEY"] = key
        result = self.runner.invoke(settle_app, list(args), env=env)
        print(f"$ secureflow settle {' '.join(args)}\n{result.output}")  # shown when a test fails
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code == code, result.output
            assert "Traceback" not in result.output
        return result


@pytest.fixture
def settle(ledger_stack: LedgerStack, ledger_db_url: str, tmp_path: Path, chain_snapshot: None) -> Settle:
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    return Settle(
        {
            "SECUREFLOW_RPC_URL": ledger_stack.rpc_url,
            "SECUREFLOW_CHAIN_ID": str(DEV_CHAIN_ID),
            "SECUREFLOW_DEPLOYMENT": str(deployment),
            "SECUREFLOW_DATABASE_URL": ledger_db_url,
            "SECUREFLOW_MEMBER_KEY": "",
        }
    )


@pytest.fixture
def job(ledger_stack: LedgerStack, store: SqlLedgerStore, settle: Settle) -> str:
    """A job of Alice and Bob in the store and on chain."""
    job_id = str(new_job(store, 4711))
    open_job_on_chain(ledger_stack, job_id, 4711)
    return job_id


def write_inputs(path: Path) -> Path:
    inputs = {
        "method": "leave_one_out",
        "metric": "auc",
        "full": METRICS["full"],
        "parties": [{"party": ALICE, "without": METRICS[ALICE]}, {"party": BOB, "without": METRICS[BOB]}],
    }
    path.write_text(json.dumps(inputs))
    return path


def balance(ledger_stack: LedgerStack, address: str) -> int:
    return int(ledger_stack.client().w3.eth.get_balance(Web3.to_checksum_address(address)))


def test_whole_flow_with_eth(
    settle: Settle, job: str, ledger_stack: LedgerStack, store: SqlLedgerStore, tmp_path: Path
) -> None:
    proposal = tmp_path / "proposal.json"
    inputs = write_inputs(tmp_path / "inputs.json")

    # deposits wait for the weights
    early = settle("deposit", job, "1ether", key=ADMIN_KEY, ok=False)
    assert "not set yet" in early.output

    proposed = settle("propose", job, "--inputs", str(inputs), "--out", str(proposal))
    assert f"{ALICE}   1275 bps" in proposed.output and f"{BOB}   8725 bps" in proposed.output
    assert "recorded as step 0 (pending anchoring)" in proposed.output
    row = store.get_record(job, 0)
    assert row is not None and row.status == "pending"
    # the metric values stay out of the record
    assert numeric_leaks(row.record_json, ("0.8137", "8137", "0.7901", "7901", "0.6523", "6523")) == []
    assert "8137" in proposal.read_text()  # ... and are in the proposal the members review

    # nothing can be approved or set before the record is anchored
    for command in ("set-weights", "approve"):
        early = settle(command, str(proposal), key=ALICE_KEY, ok=False)
        assert "is not anchored yet" in early.output and "still pending" in early.output
        assert "wait for the anchoring worker" in early.output

    run_until_settled(make_anchorer(ledger_stack, store))
    assert store.get_record(job, 0).status == "confirmed"  # type: ignore[union-attr]

    outsider = settle("approve", str(proposal), key=OUTSIDER_KEY, ok=False)
    assert "is not a member of this proposal" in outsider.output

    signed = settle("approve", str(proposal), key=ALICE_KEY)
    signature_file = tmp_path / f"proposal.approval.{ALICE.lower()}.json"
    assert str(signature_file) in signed.output and signature_file.exists()

    missing = settle("set-weights", str(proposal), key=ALICE_KEY, ok=False)
    assert f"no approval yet from {BOB}" in missing.output

    on_chain = settle("approve", str(proposal), "--on-chain", key=BOB_KEY)
    assert "approved the weights" in on_chain.output and "on chain" in on_chain.output
    assert "the inputs name no coalition job: the metrics are the proposer's word" in on_chain.output

    outsider_set = settle("set-weights", str(proposal), key=OUTSIDER_KEY, ok=False)
    assert "is not a party of job" in outsider_set.output

    done = settle("set-weights", str(proposal), key=ALICE_KEY)
    assert "set in block" in done.output
    again = settle("set-weights", str(proposal), key=BOB_KEY)
    assert "set already" in again.output
    late = settle("approve", str(proposal), key=BOB_KEY, ok=False)
    assert "set already" in late.output

    settle("deposit", job, "10ether", key=ADMIN_KEY)
    deposited = settle("deposit", job, "7", key=ADMIN_KEY)
    total = 10 * 10**18 + 7
    assert f"total deposited {total} wei" in deposited.output

    rows = json.loads(settle("balances", job, "--json").stdout)
    assert rows["deposited"] == total and rows["held"] == total
    expected = allocate(total, EXPECTED_BPS)
    assert [m["entitled"] for m in rows["members"]] == expected
    assert [m["releasable"] for m in rows["members"]] == expected
    assert [m["bps"] for m in rows["members"]] == EXPECTED_BPS
    assert "releasable" in settle("balances", job).output

    for key, address, share in ((ALICE_KEY, ALICE, expected[0]), (BOB_KEY, BOB, expected[1])):
        before = balance(ledger_stack, address)
        out = settle("withdraw", job, key=key)
        assert f"withdrew {share} wei" in out.output
        assert balance(ledger_stack, address) - before == share  # gas price 0: exact

    twice = settle("withdraw", job, key=ALICE_KEY, ok=False)
    assert "has nothing to withdraw" in twice.output and "withdrawn already" in twice.output
    stranger = settle("withdraw", job, key=OUTSIDER_KEY, ok=False)
    assert "has no weight in job" in stranger.output

    after = json.loads(settle("balances", job, "--json").stdout)
    assert [m["releasable"] for m in after["members"]] == [0, 0]
    assert after["released"] == total and after["held"] == 0

    events = json.loads(settle("history", job, "--json").stdout)
    assert [e["name"] for e in events] == [
        "WeightsApproved",
        "WeightsSet",
        "RevenueDeposited",
        "RevenueDeposited",
        "RevenueReleased",
        "RevenueReleased",
    ]
    assert [e["args"]["amount"] for e in events[-2:]] == expected
    text = settle("history", job).output
    assert f"{BOB} approved weights" in text and f"{ALICE} withdrew {expected[0]} wei" in text

    assert_api_reports_the_settlement(ledger_stack, store, job, expected, total)


def assert_api_reports_the_settlement(
    stack: LedgerStack, store: SqlLedgerStore, job: str, expected: list[int], total: int
) -> None:
    """GET /v1/settlements/{job} answers from the chain what the CLI did; strangers see nothing."""
    settings = ApiSettings(
        _env_file=None,  # type: ignore[call-arg]
        rpc_url=stack.rpc_url,
        chain_id=DEV_CHAIN_ID,
        registry_cache_seconds=0,
    )
    app = create_app(settings, store=store, client=stack.client(), deployment=stack.deployment)
    db = app.state.api_db
    auditor = add_member_key(db, "auditor", Account.create().address, "auditor")
    bob = add_member_key(db, "bob", BOB, "member")
    outsider = Account.create().address
    stack.registry().register_member(outsider)  # an active member on chain (the API refuses others)
    stranger = add_member_key(db, "stranger", outsider, "member")
    with LiveServer(app) as server:

        def get(path: str, key: str) -> requests.Response:
            return requests.get(server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=60)

        for key in (auditor, bob):
            body = get(f"/v1/settlements/{job}", key).json()
            assert body["weights_set"] and body["total_deposited"] == total == body["total_released"]
            assert [m["bps"] for m in body["balances"]] == EXPECTED_BPS
            assert [m["released"] for m in body["balances"]] == expected
            assert [m["releasable"] for m in body["balances"]] == [0, 0]
        history = get(f"/v1/settlements/{job}/history", auditor).json()["events"]
        assert [e["name"] for e in history].count("RevenueReleased") == 2
        assert get(f"/v1/settlements/{job}", stranger).status_code == 404
        assert get(f"/v1/settlements/{job}/history", stranger).status_code == 404


def test_token_revenue(
    settle: Settle, job: str, ledger_stack: LedgerStack, store: SqlLedgerStore, tmp_path: Path
) -> None:
    proposal = tmp_path / "p.json"
    inputs = tmp_path / "inputs.json"
    inputs.write_text(
        json.dumps(
            {
                "method": "data_share",
                "parties": [
                    {"party": ALICE, "features": 6, "rows": 500},
                    {"party": BOB, "features": 3, "label_columns": 1, "rows": 500},
                ],
            }
        )
    )
    settle("propose", job, "--inputs", str(inputs), "--out", str(proposal))
    run_until_settled(make_anchorer(ledger_stack, store))
    settle("approve", str(proposal), key=ALICE_KEY)
    settle("approve", str(proposal), key=BOB_KEY)
    settle("set-weights", str(proposal), key=BOB_KEY)  # both approvals from the signature files

    client = ledger_stack.client()
    artifact = load_artifact("TestToken", TEST_ARTIFACTS)
    admin = TransactionSender(client, ADMIN_KEY, ChainNonceSource(client.w3))
    token = client.w3.eth.contract(
        address=admin.deploy(artifact.abi, artifact.bytecode)["contractAddress"], abi=artifact.abi
    )
    admin.transact(token.functions.mint(Account.from_key(ADMIN_KEY).address, 1001))

    refused = settle("deposit", job, "1ether", "--token", token.address, key=ADMIN_KEY, ok=False)
    assert "whole units" in refused.output
    settle("deposit", job, "1001", "--token", token.address, key=ADMIN_KEY)
    rows = json.loads(settle("balances", job, "--token", token.address, "--json").stdout)
    assert [m["entitled"] for m in rows["members"]] == allocate(1001, [6000, 4000]) == [601, 400]
    settle("withdraw", job, "--token", token.address, key=BOB_KEY)
    assert token.functions.balanceOf(BOB).call() == 400
    eth = settle("withdraw", job, key=BOB_KEY, ok=False)  # nothing deposited in ETH
    assert "nothing to withdraw in ETH" in eth.output


def test_configuration_and_input_errors(
    settle: Settle, job: str, store: SqlLedgerStore, tmp_path: Path
) -> None:
    no_key = settle("withdraw", job, ok=False)
    assert "SECUREFLOW_MEMBER_KEY is not set" in no_key.output
    bad_job = settle("balances", "0x1234", ok=False)
    assert "is not 0x + 64 hex digits" in bad_job.output
    missing = settle("approve", str(tmp_path / "none.json"), key=ALICE_KEY, ok=False)
    assert "no proposal file" in missing.output
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"method": "data_share", "parties": [{"party": ALICE, "features": 1}]}))
    others = settle("propose", job, "--inputs", str(inputs), ok=False)
    assert "the job's parties are" in others.output
    unknown = settle("propose", "0x" + "99" * 32, "--inputs", str(write_inputs(inputs)), ok=False)
    assert "does not exist on the audit ledger" in unknown.output

    first = tmp_path / "first.json"
    settle("propose", job, "--inputs", str(inputs), "--out", str(first))
    exists = settle("propose", job, "--inputs", str(inputs), "--out", str(first), ok=False)
    assert "exists already" in exists.output and "--force" in exists.output
    # the caller never chooses the step number (as through the API)
    second = tmp_path / "second.json"
    chosen = settle(
        "propose", job, "--inputs", str(inputs), "--out", str(second), "--seq", "0", ok=False, code=2
    )
    assert "No such option" in chosen.output and not second.exists()
    # the same inputs again record nothing new; other inputs take the next step
    again = settle("propose", job, "--inputs", str(inputs), "--out", str(first), "--force")
    assert "proposed before with these inputs as step 0" in again.output
    assert json.loads(first.read_text())["seq"] == 0 and store.get_record(job, 1) is None
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(inputs.read_text()), "full": 0.9}))
    settle("propose", job, "--inputs", str(other), "--out", str(first), "--force")
    assert json.loads(first.read_text())["seq"] == 1


def test_a_kept_proposal_without_its_record_is_recorded_or_replaced(
    settle: Settle, job: str, store: SqlLedgerStore, tmp_path: Path
) -> None:
    """A proposal file whose record never reached the outbox (the process stopped in between) is recorded
    when the same inputs are proposed again; if its step was taken meanwhile, a new proposal replaces it."""
    inputs_path = write_inputs(tmp_path / "inputs.json")
    inputs = load_inputs(inputs_path)
    kept = tmp_path / "kept.json"
    lost = prepare_contribution(job, 0, inputs, job_parties=[ALICE, BOB])
    lost.save(kept)
    again = settle("propose", job, "--inputs", str(inputs_path), "--out", str(kept), "--force")
    assert "proposed before with these inputs as step 0 (its record is pending)" in again.output
    row = store.get_record(job, 0)
    assert row is not None and row.record_hash == lost.record_hash
    assert ContributionProposal.load(kept) == lost  # the same salt: the record and the file agree

    taken = tmp_path / "taken.json"
    prepare_contribution(job, 1, inputs, job_parties=[ALICE, BOB]).save(taken)
    accept(store, job, 1, start=1)  # another step took seq 1 meanwhile
    replaced = settle("propose", job, "--inputs", str(inputs_path), "--out", str(taken), "--force")
    assert "recorded as step 2" in replaced.output
    fresh = ContributionProposal.load(taken)
    assert fresh.seq == 2 and store.get_record(job, 2).record_hash == fresh.record_hash  # type: ignore[union-attr]


def chain_state(stack: LedgerStack) -> tuple[int, ...]:
    """Blocks (automine: every mined transaction makes one) and the nonces of everyone who signs here."""
    w3 = stack.client().w3
    signers = [Account.from_key(k).address for k in (ADMIN_KEY, ALICE_KEY, BOB_KEY, OUTSIDER_KEY)]
    return (w3.eth.block_number, *(w3.eth.get_transaction_count(a, "pending") for a in signers))


def test_a_compute_job_is_proposed_for_after_its_last_step_once_completed(
    settle: Settle, job: str, store: SqlLedgerStore, tmp_path: Path
) -> None:
    """The API's rule through the CLI: a job submitted to the API (its manifest is in this database) records
    step N at seq N, so the contribution record waits for it and goes after its last planned step."""
    api_db = ApiDb(store.engine)
    api_db.migrate()
    steps = [{"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}}] * 4
    api_db.put_manifest(job, {"name": "m", "steps": steps}, 1)
    accept(store, job, 2)  # steps 0 and 1 recorded, 2 and 3 still to run
    store.update_job(job, status="running")
    proposal = tmp_path / "proposal.json"
    inputs = write_inputs(tmp_path / "inputs.json")
    before = store.count_records_by_status()
    running = settle("propose", job, "--inputs", str(inputs), "--out", str(proposal), ok=False)
    assert "still being recorded" in running.output and "once the job has completed" in running.output
    assert not proposal.exists() and store.count_records_by_status() == before

    store.update_job(job, status="completed")
    done = settle("propose", job, "--inputs", str(inputs), "--out", str(proposal))
    assert "recorded as step 4" in done.output  # after the manifest's last step, not after the last record
    assert json.loads(proposal.read_text())["seq"] == 4 and store.get_record(job, 4) is not None


def test_forged_approvals_and_tampered_proposals_are_refused_unsent(
    settle: Settle, job: str, ledger_stack: LedgerStack, store: SqlLedgerStore, tmp_path: Path
) -> None:
    proposal = tmp_path / "proposal.json"
    settle("propose", job, "--inputs", str(write_inputs(tmp_path / "inputs.json")), "--out", str(proposal))
    run_until_settled(make_anchorer(ledger_stack, store))
    settle("approve", str(proposal), key=ALICE_KEY)
    alice_file = tmp_path / f"proposal.approval.{ALICE.lower()}.json"
    alice_approval = json.loads(alice_file.read_text())
    before = chain_state(ledger_stack)

    # Alice's signature in a file that claims to be Bob's
    bob_file = tmp_path / f"proposal.approval.{BOB.lower()}.json"
    bob_file.write_text(json.dumps({**alice_approval, "party": BOB}))
    forged = settle("set-weights", str(proposal), key=ALICE_KEY, ok=False)
    assert f"claims party {BOB} but is signed by {ALICE}" in forged.output
    # an approval of other weights
    bob_file.write_text(json.dumps({**alice_approval, "party": BOB, "weights_hash": "0x" + "ab" * 32}))
    other = settle("set-weights", str(proposal), key=ALICE_KEY, ok=False)
    assert "approves another proposal" in other.output
    # not an approval at all
    bob_file.write_text("{}")
    assert "is not an approval file" in settle("set-weights", str(proposal), key=ALICE_KEY, ok=False).output
    bob_file.unlink()
    # a proposal file whose weights were changed after the record was anchored
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**json.loads(proposal.read_text()), "bps": [5000, 5000]}))
    for command in ("approve", "set-weights"):
        refused = settle(command, str(tampered), key=BOB_KEY, ok=False)
        assert "the inputs give weights" in refused.output
    # a member of the consortium who is no party of the job
    assert (
        "is not a member of this proposal"
        in settle("approve", str(proposal), key=OUTSIDER_KEY, ok=False).output
    )
    assert "is not a party of job" in settle("set-weights", str(proposal), key=OUTSIDER_KEY, ok=False).output
    assert chain_state(ledger_stack) == before

    # Bob's own approval, then the weights are set from the two files
    settle("approve", str(proposal), key=BOB_KEY)
    assert "set in block" in settle("set-weights", str(proposal), key=BOB_KEY).output


def test_a_file_name_with_brackets_is_printed_as_it_is(settle: Settle, job: str, tmp_path: Path) -> None:
    """User text (here the proposal's path) is never read as Rich markup: `[bold]` stays in the output."""
    proposal = tmp_path / "proposal[bold].json"
    proposed = settle(
        "propose", job, "--inputs", str(write_inputs(tmp_path / "inputs.json")), "--out", str(proposal)
    )
    assert f"proposal written to {proposal}" in proposed.output, proposed.output
    assert f"secureflow settle approve {shlex.quote(str(proposal))}" in proposed.output  # runs as printed


def test_the_node_is_named_with_rpc_url_as_in_every_command(
    settle: Settle, job: str, ledger_stack: LedgerStack
) -> None:
    settle.env["SECUREFLOW_RPC_URL"] = "http://127.0.0.1:9"  # the environment names a node that is not there
    shown = settle("--rpc-url", ledger_stack.rpc_url, "history", job)  # the option wins
    assert f"no settlement events for job {job}" in shown.output


def test_parse_amount() -> None:
    assert parse_amount("1.5ether", token=False) == 15 * 10**17
    assert parse_amount("2 gwei", token=False) == 2 * 10**9
    assert parse_amount("1_000", token=False) == 1000
    assert parse_amount("42", token=True) == 42
    for text in ("0", "-1", "0.5", "abc", "1e-30ether", "1e999999999", "nan", "inf"):
        with pytest.raises(LedgerError):
            parse_amount(text, token=False)
    with pytest.raises(LedgerError, match="whole units"):
        parse_amount("1ether", token=True)
    assert parse_amount("1234567890123456789012345678901", token=True) == 1234567890123456789012345678901
    assert parse_amount("1.234567890123456789ether", token=False) == 1234567890123456789
    assert parse_amount(str(2**256 - 1), token=True) == 2**256 - 1
    with pytest.raises(LedgerError, match="uint256"):
        parse_amount(str(2**256), token=True)


def test_mounts_under_the_root_cli_and_imports_lightly() -> None:
    root = typer.Typer()
    root.add_typer(settle_app, name="settle")
    result = CliRunner().invoke(root, ["settle", "--help"])
    assert result.exit_code == 0
    for command in ("propose", "approve", "set-weights", "deposit", "balances", "withdraw", "history"):
        assert command in result.output
    # `secureflow --help` must stay fast: web3 is imported only when a settle command runs
    code = "import sys, secureflow.api.cli.settle; assert 'web3' not in sys.modules, 'web3 imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_a_coalition_job_without_every_partys_consent_is_no_evidence(
    settle: Settle, job: str, ledger_stack: LedgerStack, store: SqlLedgerStore, tmp_path: Path
) -> None:
    """Attack: Alice (the measuring member) creates the coalition jobs on chain with only her own consent
    (Bob never agreed to run them) and names them as the leave-one-out evidence. `settle propose` refuses,
    naming the job and the missing consent; nothing is recorded. The same inputs with coalition jobs both
    parties consented to are accepted."""
    alone = [str(new_job(store, tag)) for tag in (4801, 4802, 4803)]
    for job_id, tag in zip(alone, (4801, 4802, 4803), strict=True):
        open_job_on_chain(ledger_stack, job_id, tag, consenting=1)  # Proposed: Bob's consent is missing

    def inputs(path: Path, jobs: list[str]) -> Path:
        document = json.loads(write_inputs(path).read_text())
        document["full_job"] = jobs[0]
        for party, job_id in zip(document["parties"], jobs[1:], strict=True):
            party["job_id"] = job_id
        path.write_text(json.dumps(document))
        return path

    proposal = tmp_path / "proposal.json"
    refused = settle(
        "propose",
        job,
        "--inputs",
        str(inputs(tmp_path / "alone.json", alone)),
        "--out",
        str(proposal),
        ok=False,
    )
    assert alone[0] in refused.output and "PROPOSED" in refused.output, refused.output
    assert f"without the consent of {BOB}" in refused.output and "settle measure" in refused.output
    assert store.records_for_job(job) == [] and not proposal.exists()

    unknown = "0x" + "ab" * 32  # a coalition job that is not on chain at all
    refused = settle(
        "propose", job, "--inputs", str(inputs(tmp_path / "unknown.json", [unknown, *alone[1:]])), ok=False
    )
    assert "is not on the audit ledger" in refused.output and store.records_for_job(job) == []

    consented = [str(new_job(store, tag)) for tag in (4811, 4812, 4813)]
    for job_id, tag in zip(consented, (4811, 4812, 4813), strict=True):
        open_job_on_chain(ledger_stack, job_id, tag)  # both parties' consents: Open
    proposed = settle(
        "propose", job, "--inputs", str(inputs(tmp_path / "ok.json", consented)), "--out", str(proposal)
    )
    assert f"{ALICE}   1275 bps" in proposed.output and "recorded as step 0" in proposed.output


def test_shapley_inputs_are_proposed_with_their_coalition_jobs_checked(
    settle: Settle, job: str, ledger_stack: LedgerStack, store: SqlLedgerStore, tmp_path: Path
) -> None:
    """Method shapley through `settle propose`: the proposal names the method; a coalition job still
    waiting for Bob's consent is refused as evidence, as for leave-one-out, and so is one job named for two
    coalitions."""
    consented, alice_only = str(new_job(store, 4821)), str(new_job(store, 4823))
    open_job_on_chain(ledger_stack, consented, 4821)
    open_job_on_chain(ledger_stack, alice_only, 4823)
    alone = str(new_job(store, 4822))
    open_job_on_chain(ledger_stack, alone, 4822, consenting=1)

    def inputs(path: Path, alice_only_job: str) -> Path:
        document = {
            "method": "shapley",
            "metric": "auc",
            "baseline": 0.5,
            "label_party": ALICE,
            "parties": [ALICE, BOB],
            "coalitions": [
                {"parties": [ALICE, BOB], "metric": 0.9, "job_id": consented},
                {"parties": [ALICE], "metric": 0.6, "job_id": alice_only_job},
            ],
        }
        path.write_text(json.dumps(document))
        return path

    proposal = tmp_path / "proposal.json"
    refused = settle("propose", job, "--inputs", str(inputs(tmp_path / "alone.json", alone)), ok=False)
    assert alone in refused.output and f"without the consent of {BOB}" in refused.output
    assert store.records_for_job(job) == []
    twice = settle("propose", job, "--inputs", str(inputs(tmp_path / "twice.json", consented)), ok=False)
    assert "for two coalitions" in twice.output and store.records_for_job(job) == []
    proposed = settle(
        "propose", job, "--inputs", str(inputs(tmp_path / "ok.json", alice_only)), "--out", str(proposal)
    )
    # v({alice}) = 0.1, v(all) = 0.4: alice 0.1/2 + 0.4/2 = 0.25, bob 0.3/2 = 0.15 -> 6250 : 3750
    assert "by shapley" in proposed.output and f"{ALICE}   6250 bps" in proposed.output
    saved = ContributionProposal.load(proposal)
    assert saved.method == "shapley" and saved.bps == (6250, 3750)
    saved.verify()
