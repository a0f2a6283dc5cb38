"""Benchmark of proof building: the figures the unit tests used to assert as durations.

Measures, on this machine, in one run:

* one Merkle tree of 20,000 leaves and a proof for every leaf, against the naive baseline of
  building the tree again for every proof (measured on 10 proofs and scaled to 20,000);
* the audit bundle of a 10,000-record job from a SQLite ledger store (one tree per batch),
  against the naive baseline of one ``build_receipt`` per record (which rebuilds its batch's
  tree each time), measured on the first 100 records and scaled to 10,000.

Run: ``.venv/bin/python scripts/bench_proofs.py [--leaves 20000] [--records 10000]``.
Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from tempfile import TemporaryDirectory

from eth_account import Account
from eth_utils.crypto import keccak
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from secureflow.ledger.contracts import hex32
from secureflow.ledger.merkle import MerkleTree, leaf_hash, verify_proof
from secureflow.ledger.receipts import build_bundle, build_receipt
from secureflow.ledger.records import PartyDigests, StepRecord, params_hash
from secureflow.ledger.store import open_store
from secureflow.ledger.store.models import StepRecordOrm
from secureflow.ledger.store.schemas import NewJob, NewStepRecord

CHAIN_ID = 1337
CONTRACT = "0x" + "11" * 20


def bench_merkle(n: int) -> None:
    leaves = [keccak(i.to_bytes(4, "big")) for i in range(n)]
    t0 = time.perf_counter()
    tree = MerkleTree(leaves)
    proofs = [tree.proof(leaf) for leaf in leaves]
    took = time.perf_counter() - t0
    assert verify_proof(leaves[n // 2], proofs[n // 2], tree.root)
    sample = 10
    t0 = time.perf_counter()
    for leaf in leaves[:sample]:
        MerkleTree(leaves).proof(leaf)
    naive = (time.perf_counter() - t0) / sample * n
    print(f"merkle: {n} leaves, one tree + every proof {took:.3f} s ({took / n * 1e6:.1f} us/leaf)")
    print(
        f"  baseline (a tree per proof, {sample} measured, scaled): {naive:.1f} s; "
        f"ratio {naive / took:.0f}x faster"
    )


def bench_bundle(n: int) -> None:
    alice = Account.create().address
    with TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            job_id = hex32(keccak(secrets.token_bytes(32)))
            store.create_job(
                NewJob(job_id=job_id, manifest_hash=hex32(keccak(b"m")), creator=alice, parties=[alice])
            )
            now = datetime.now(timezone.utc)
            rows, leaves = [], []
            for seq in range(n):
                record = StepRecord(
                    job_id=job_id,
                    seq=seq,
                    algorithm="psi",
                    params_hash=params_hash({"seq": seq}),
                    code_version="secureflow-bench",
                    parties=(
                        PartyDigests(
                            party=alice,
                            inputs={"table": hex32(keccak(f"in{seq}".encode()))},
                            outputs={"table": hex32(keccak(f"out{seq}".encode()))},
                        ),
                    ),
                    status="succeeded",
                    started_at_ms=1_700_000_000_000 + seq,
                    finished_at_ms=1_700_000_000_001 + seq,
                )
                canonical = record.canonical_json()
                record_hash = keccak(canonical)
                leaf = leaf_hash(bytes.fromhex(job_id[2:]), seq, record_hash)
                leaves.append(leaf)
                new = NewStepRecord(
                    job_id=job_id,
                    seq=seq,
                    record_json=canonical.decode(),
                    record_hash=hex32(record_hash),
                    leaf=hex32(leaf),
                )
                rows.append({**new.model_dump(), "status": "pending", "accepted_at": now, "updated_at": now})
            with store.engine.begin() as conn:
                conn.execute(insert(StepRecordOrm), rows)
            ids = [row.id for row in store.records_for_job(job_id)]
            tree = MerkleTree(leaves)
            batch_id = hex32(keccak(tree.root))
            store.create_batch(batch_id, hex32(tree.root), ids)
            store.mark_batch_submitted(batch_id, hex32(keccak(b"tx")), alice, 0)
            store.mark_batch_confirmed(batch_id, 1, hex32(keccak(b"block")))

            t0 = time.perf_counter()
            bundle = build_bundle(store, CHAIN_ID, CONTRACT, job_id)
            took = time.perf_counter() - t0
            assert len(bundle.receipts) == n
            sample = min(n, 100)
            t0 = time.perf_counter()
            for seq in range(sample):
                build_receipt(store, CHAIN_ID, CONTRACT, job_id, seq)
            naive = (time.perf_counter() - t0) / sample * n
            print(f"bundle: {n} records, one tree per batch {took:.2f} s ({took / n * 1e3:.2f} ms/record)")
            print(
                f"  baseline (build_receipt per record, {sample} measured, scaled): {naive:.1f} s; "
                f"ratio {naive / took:.0f}x faster"
            )
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=20_000)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    bench_merkle(args.leaves)
    bench_bundle(args.records)


if __name__ == "__main__":
    main()
