"""Gas report: gas used by every state-changing contract function, measured on a fresh anvil (Berlin).

Run: ``.venv/bin/python scripts/gas_report.py [--json]``. Covers the registry, the audit
ledger and the settlement contract (set weights for 2/5/20 members, deposits, withdrawals,
from ``scripts/gas_settlement.py``). For ``anchorBatch`` the
gas per anchored step is shown for several batch sizes (the root is all that
is stored, so a batch's cost does not grow with its size).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from eth_account import Account
from eth_utils.crypto import keccak
from web3.types import TxReceipt

from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.consent import sign_consent
from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient
from secureflow.ledger.deploy import connect, deploy_contracts
from secureflow.ledger.devchain import DEV_CHAIN_ID, DevChain
from secureflow.ledger.merkle import MerkleTree, leaf_hash
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.records import job_id_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gas_settlement import print_rows, settlement_gas_rows

BATCH_SIZES = (1, 100, 1_000, 10_000)


def _row(
    rows: list[dict[str, object]], contract: str, function: str, receipt: TxReceipt, note: str = ""
) -> None:
    rows.append({"contract": contract, "function": function, "gas": int(receipt["gasUsed"]), "note": note})


def measure() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with DevChain(accounts=30) as chain:
        client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
        nonces = ChainNonceSource(client.w3)
        keys = [Account.create() for _ in range(21)]
        admin_key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        admin = TransactionSender(client, admin_key, nonces)
        for account in keys:  # fund fresh accounts so every signer is a distinct member
            client.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])  # type: ignore[arg-type]

        deployment = deploy_contracts(client, admin)
        for name, entry in deployment.contracts.items():
            receipt = client.w3.eth.get_transaction_receipt(entry.tx_hash)  # type: ignore[arg-type]
            _row(rows, name, "deploy", receipt)

        registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
        ledger_contract = connect(client, deployment, "AuditLedger")
        members = keys[:20]
        for i, member in enumerate(members):
            receipt = registry.register_member(member.address, keccak(text=f"member-{i}"))
            if i == 0:
                _row(rows, "ConsortiumRegistry", "registerMember", receipt)
        _row(rows, "ConsortiumRegistry", "suspendMember", registry.suspend_member(members[-1].address))
        _row(rows, "ConsortiumRegistry", "reinstateMember", registry.reinstate_member(members[-1].address))
        anchor = keys[20]
        _row(
            rows,
            "ConsortiumRegistry",
            "grantRole(ANCHOR_ROLE)",
            registry.grant_anchor_service(anchor.address),
        )

        creator = TransactionSender(client, members[0].key.hex(), nonces)
        ledger = AuditLedgerClient(ledger_contract, creator)

        def new_job(parties: int, consenting: int) -> tuple[bytes, bytes, TxReceipt]:
            manifest, salt = secrets.token_bytes(32), secrets.token_bytes(32)
            job_id = bytes.fromhex(job_id_for(members[0].address, manifest, salt)[2:])
            signers = members[:parties]
            consents = [
                sign_consent(m.key.hex(), client.chain_id, ledger.address, job_id, manifest)
                if i < consenting
                else b""
                for i, m in enumerate(signers)
            ]
            return (
                job_id,
                manifest,
                ledger.create_job(
                    manifest_hash=manifest, salt=salt, parties=[m.address for m in signers], consents=consents
                ),
            )

        for parties in (2, 5, 20):
            _, _, receipt = new_job(parties, 0)
            _row(rows, "AuditLedger", "createJob", receipt, f"{parties} parties, no signatures: Proposed")
            _, _, receipt = new_job(parties, parties)
            _row(
                rows, "AuditLedger", "createJob", receipt, f"{parties} parties, all consent signatures: Open"
            )

        job_id, manifest, _ = new_job(2, 1)
        signature = sign_consent(members[1].key.hex(), client.chain_id, ledger.address, job_id, manifest)
        _row(
            rows,
            "AuditLedger",
            "submitConsent",
            ledger.submit_consent(job_id, members[1].address, signature),
            "the last missing consent: opens the job",
        )

        anchor_ledger = AuditLedgerClient(
            ledger_contract, TransactionSender(client, anchor.key.hex(), nonces)
        )
        for size in BATCH_SIZES:
            receipt = anchor_ledger.anchor_batch(secrets.token_bytes(32), secrets.token_bytes(32), size)
            gas = int(receipt["gasUsed"])
            _row(
                rows, "AuditLedger", "anchorBatch", receipt, f"{size} records: {gas / size:,.1f} gas per step"
            )

        model_id = secrets.token_bytes(32)
        _row(
            rows,
            "AuditLedger",
            "recordModel",
            anchor_ledger.record_model(job_id, model_id, 1, secrets.token_bytes(32)),
            "anchoring service, open job",
        )
        for steps in (3, 1_000):  # the job's records in a batch of `steps` leaves, last record proven
            if steps != 3:
                job_id, _, _ = new_job(2, 2)
            hashes = [secrets.token_bytes(32) for _ in range(steps)]
            tree = MerkleTree(leaf_hash(job_id, seq, h) for seq, h in enumerate(hashes))
            anchor_ledger.anchor_batch(secrets.token_bytes(32), tree.root, steps)
            proof = tree.proof(leaf_hash(job_id, steps - 1, hashes[-1]))
            receipt = anchor_ledger.close_job(
                job_id, step_count=steps, final_record_hash=hashes[-1], final_root=tree.root, proof=proof
            )
            _row(rows, "AuditLedger", "closeJob", receipt, f"{steps} steps: proof of {len(proof)} nodes")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    rows = measure() + [r for r in settlement_gas_rows() if r["function"] != "deploy"]
    title = "Gas per contract function (anvil, Berlin, solc 0.8.30, optimizer 200 runs)"
    print_rows(rows, title, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
