"""A creator's party worker signs ``createJob`` only for what it checked itself (no signing oracle).

The worker's own code (`secureflow.compute.worker.main.Worker`, without SecretFlow: consent and
``createJob`` signing need none): alice consents to a job under her policy, then whoever writes her
requests (the coordinator, or anyone who can write her node's queue) asks her to sign its ``createJob``.
The signed transaction must be exactly the job she checked, sent by her key, to the ledger she consented
on; a request with a consent that is not the party's, a fourth nonce, or a gas price her policy does not
allow is refused, and a repeated nonce gets the same bytes (nothing new to replay).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_utils.crypto import keccak

from secureflow.compute.errors import ComputeError, ConsentRefusedError
from secureflow.compute.manifest import JobManifest
from secureflow.compute.policy import PartyPolicy, write_policy
from secureflow.compute.worker.main import MAX_CREATE_JOB_SIGNATURES, Worker
from secureflow.compute.worker.protocol import PartyPorts, WorkerSettings
from secureflow.ledger.consent import create_job_calldata, sign_consent
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS
from secureflow.ledger.records import job_id_for

ALICE_KEY, BOB_KEY = DEV_PRIVATE_KEYS[1], DEV_PRIVATE_KEYS[2]
ALICE, BOB = Account.from_key(ALICE_KEY).address, Account.from_key(BOB_KEY).address
LEDGER = "0x" + "ab" * 20
SALT, SECRET = "0x" + "11" * 32, "0x" + "22" * 32


def _worker(root: Path, policy: PartyPolicy) -> Worker:
    (root / "secrets").mkdir(parents=True, mode=0o700)
    (root / "secrets" / "member.key").write_text(ALICE_KEY.removeprefix("0x"))
    (root / "data").mkdir()
    (root / "data" / "t.csv").write_text("id,a\n1,2\n")
    write_policy(root, policy)
    table = {p: PartyPorts(fed=1000 + i, spu={}) for i, p in enumerate(("alice", "bob"))}
    settings = WorkerSettings(
        party="alice", parties=table, party_dir=str(root), fd=-1, coordinator_pid=os.getpid()
    )
    return Worker(settings, conn=None)  # type: ignore[arg-type]  # no coordinator: ops are called directly


MANIFEST: dict[str, Any] = {
    "name": "signing",
    "parties": [{"name": "alice", "address": ALICE}, {"name": "bob", "address": BOB}],
    "datasets": {"raw": {"alice": "t.csv", "bob": "t.csv"}},
    "steps": [
        {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}}
    ],
}


def _consented(worker: Worker) -> tuple[str, bytes, list[str]]:
    """Alice consents (her worker's own check); bob's consent as bob's node would sign it."""
    manifest_hash = JobManifest.parse(MANIFEST).manifest_hash(SECRET)
    job_id = job_id_for(ALICE, manifest_hash, SALT)
    mine = worker.op_consent(
        {"manifest": MANIFEST, "job_id": job_id, "creator": ALICE, "salt": SALT, "job_secret": SECRET,
         "chain_id": DEV_CHAIN_ID, "ledger": LEDGER}
    )  # fmt: skip
    bobs = sign_consent(
        BOB_KEY, DEV_CHAIN_ID, LEDGER, bytes.fromhex(job_id[2:]), bytes.fromhex(manifest_hash[2:])
    )
    return job_id, bytes.fromhex(manifest_hash[2:]), [mine["signature"], "0x" + bobs.hex()]


def _ask(worker: Worker, job_id: str, consents: list[str], nonce: int, gas_price: int = 0) -> dict[str, Any]:
    return worker.op_create_job_tx(
        {"job_id": job_id, "consents": consents, "nonce": nonce, "gas": 900_000, "gas_price": gas_price}
    )


def test_the_creator_signs_exactly_the_job_it_checked_and_nothing_more(tmp_path: Path) -> None:
    worker = _worker(tmp_path / "alice", PartyPolicy(reveal={"psi": (BOB,)}))
    job_id, manifest_hash, consents = _consented(worker)

    signed = _ask(worker, job_id, consents, nonce=7)
    raw = bytes.fromhex(signed["raw"][2:])
    nonce, gas_price, _gas, to, value, data, v, _r, _s = rlp.decode(raw)
    assert Account.recover_transaction(raw) == ALICE  # her own key
    assert ("0x" + to.hex(), int.from_bytes(nonce, "big"), int.from_bytes(gas_price, "big"), value) == (
        LEDGER,
        7,
        0,
        b"",
    )
    chain_id = (int.from_bytes(v, "big") - 35) // 2  # EIP-155
    assert chain_id == DEV_CHAIN_ID
    expected = create_job_calldata(
        manifest_hash, bytes.fromhex(SALT[2:]), [ALICE, BOB], [bytes.fromhex(c[2:]) for c in consents]
    )
    assert data == expected and signed["tx_hash"] == "0x" + keccak(raw).hex()

    # the same nonce again: the same bytes, nothing new
    assert _ask(worker, job_id, consents, nonce=7)["raw"] == signed["raw"]
    # a consent that is not bob's (alice's own signature in his place) is refused
    with pytest.raises(ConsentRefusedError, match=f"not its consent to job {job_id}"):
        _ask(worker, job_id, [consents[0], consents[0]], nonce=8)
    # a lost nonce race may be retried, a bounded number of times
    for extra in range(1, MAX_CREATE_JOB_SIGNATURES):
        _ask(worker, job_id, consents, nonce=7 + extra)
    with pytest.raises(ConsentRefusedError, match="not signing again"):
        _ask(worker, job_id, consents, nonce=100)
    # too much gas, and a job it never consented to
    with pytest.raises(ComputeError, match="out of range"):
        worker.op_create_job_tx(
            {"job_id": job_id, "consents": consents, "nonce": 7, "gas": 10**8, "gas_price": 0}
        )
    with pytest.raises(ConsentRefusedError, match="has not consented"):
        _ask(worker, "0x" + "33" * 32, consents, nonce=0)


def test_a_gas_price_needs_the_policy_s_cap_and_a_pinned_deployment(tmp_path: Path) -> None:
    free = _worker(tmp_path / "free", PartyPolicy(reveal={"psi": (BOB,)}))
    job_id, _, consents = _consented(free)
    with pytest.raises(ConsentRefusedError, match="at most 0 wei"):
        _ask(free, job_id, consents, nonce=0, gas_price=1)

    unpinned = _worker(tmp_path / "unpinned", PartyPolicy(reveal={"psi": (BOB,)}, max_gas_price_wei=10))
    job_id, _, consents = _consented(unpinned)
    with pytest.raises(ConsentRefusedError, match="only on a pinned deployment"):
        _ask(unpinned, job_id, consents, nonce=0, gas_price=1)

    pinned = PartyPolicy(reveal={"psi": (BOB,)}, max_gas_price_wei=10, chain_id=DEV_CHAIN_ID, ledger=LEDGER)
    paid = _worker(tmp_path / "pinned", pinned)
    job_id, _, consents = _consented(paid)
    assert _ask(paid, job_id, consents, nonce=0, gas_price=1)["raw"].startswith("0x")
    # and a pinned node refuses to consent on another ledger at all
    with pytest.raises(ConsentRefusedError, match="is not the pinned ledger"):
        manifest_hash = JobManifest.parse(MANIFEST).manifest_hash(SECRET)
        paid.op_consent(
            {"manifest": MANIFEST, "job_id": job_id_for(ALICE, manifest_hash, SALT), "creator": ALICE,
             "salt": SALT, "job_secret": SECRET, "chain_id": DEV_CHAIN_ID, "ledger": "0x" + "cd" * 20}
        )  # fmt: skip
