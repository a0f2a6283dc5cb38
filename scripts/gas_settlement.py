"""Gas of the Settlement contract per operation, measured on a fresh anvil (Berlin, gas price 0).

Run: ``.venv/bin/python scripts/gas_settlement.py [--json]``. ``settlement_gas_rows()`` returns rows in
the shape of ``scripts/gas_report.py`` (contract, function, gas, note) so that it can be merged there.
Weights are set for jobs of 2, 5 and 20 parties (all EIP-712 signatures, and on-chain approvals);
deposits and withdrawals in ETH and in an ERC-20 test token; withdrawals when the total is not divisible
(the rounding remainder is spread, the worst case of the allocation loop) and when it is.
"""

from __future__ import annotations

import argparse
import json
import sys

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from rich.console import Console
from rich.table import Table
from web3.types import TxReceipt

from secureflow.ledger.artifacts import ARTIFACTS_DIR, load_artifact
from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient
from secureflow.ledger.deploy import connect, deploy_contracts, deploy_settlement
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain
from secureflow.ledger.merkle import MerkleTree
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.records import PartyDigests, StepRecord, job_id_for
from secureflow.ledger.settlement.client import SettlementClient, settlement_contract
from secureflow.ledger.settlement.contribution import WEIGHTS_OUTPUT, propose_weights
from secureflow.ledger.settlement.weights import bps_from_scores, weights_hash

PARTY_COUNTS = (2, 5, 20)


def _row(rows: list[dict[str, object]], function: str, receipt: TxReceipt, note: str = "") -> None:
    rows.append(
        {"contract": "Settlement", "function": function, "gas": int(receipt["gasUsed"]), "note": note}
    )


def _key(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


def settlement_gas_rows() -> list[dict[str, object]]:
    """Gas per Settlement operation on a fresh dev chain."""
    rows: list[dict[str, object]] = []
    with DevChain() as chain:
        client = ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
        nonces = ChainNonceSource(client.w3)
        admin = TransactionSender(client, DEV_PRIVATE_KEYS[0], nonces)
        deployment = deploy_contracts(client, admin)
        registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
        ledger_contract = connect(client, deployment, "AuditLedger")
        deployed = deploy_settlement(
            client, admin, deployment.address_of("ConsortiumRegistry"), deployment.address_of("AuditLedger")
        )
        rows.append(
            {
                "contract": "Settlement",
                "function": "deploy",
                "gas": int(client.w3.eth.get_transaction_receipt(deployed.tx_hash)["gasUsed"]),  # type: ignore[arg-type]
                "note": "",
            }
        )
        contract = settlement_contract(client, deployed.address)
        token_artifact = load_artifact("TestToken", ARTIFACTS_DIR / "test")
        token_address = str(admin.deploy(token_artifact.abi, token_artifact.bytecode)["contractAddress"])
        token = client.contract(token_address, token_artifact.abi, "TestToken")
        admin.transact(token.functions.mint(admin.address, 10**30))

        members = [
            Account.from_key(keccak(text=f"gas-settlement-member-{i}")) for i in range(max(PARTY_COUNTS))
        ]
        for member in members:
            registry.register_member(member.address)
        anchor = Account.from_key(keccak(text="gas-settlement-anchor"))
        registry.grant_anchor_service(anchor.address)
        anchorer = AuditLedgerClient(ledger_contract, TransactionSender(client, _key(anchor), nonces))
        senders = {m.address: TransactionSender(client, _key(m), nonces) for m in members}
        depositor = SettlementClient(contract, admin)

        for parties in PARTY_COUNTS:
            for on_chain in (False, True):
                salt = keccak(text=f"gas-job-{parties}-{on_chain}")
                group = members[:parties]
                addresses = [m.address for m in group]
                job_id = bytes.fromhex(job_id_for(addresses[0], keccak(salt), salt)[2:])
                creator = AuditLedgerClient(ledger_contract, senders[addresses[0]])
                creator.create_job(manifest_hash=keccak(salt), salt=salt, parties=addresses)
                bps = bps_from_scores([i + 1 for i in range(parties)])
                wh = "0x" + weights_hash(job_id, addresses, bps).hex()
                record = StepRecord(
                    job_id="0x" + job_id.hex(),
                    seq=1,
                    algorithm="contribution",
                    params_hash="0x" + keccak(b"params").hex(),
                    code_version="gas",
                    parties=tuple(PartyDigests(party=a, outputs={WEIGHTS_OUTPUT: wh}) for a in addresses),
                    status="succeeded",
                    started_at_ms=0,
                    finished_at_ms=1,
                )
                leaves = [record.leaf()] + [keccak(record.leaf() + bytes([i])) for i in range(7)]
                tree = MerkleTree(leaves)  # an 8-record batch: 3 proof elements
                anchorer.anchor_batch(keccak(tree.root), tree.root, len(leaves))
                proposal = propose_weights(job_id, addresses, bps, record, tree)
                setter = SettlementClient(contract, senders[addresses[0]])
                if on_chain:
                    for i, member in enumerate(group):
                        receipt = SettlementClient(contract, senders[member.address]).approve_weights(
                            proposal
                        )
                        if i == 0:
                            _row(rows, "approveWeights", receipt, "per party")
                    receipt = setter.set_weights(proposal)
                    _row(rows, "setWeights", receipt, f"{parties} parties, on-chain approvals")
                    continue
                signatures = [setter.sign_approval(_key(m), proposal) for m in group]
                receipt = setter.set_weights(proposal, signatures)
                _row(rows, "setWeights", receipt, f"{parties} parties, EIP-712 signatures")

                _row(
                    rows, "depositEth", depositor.deposit_eth(job_id, 10**18 + 7), f"{parties} parties, first"
                )
                _row(rows, "depositEth", depositor.deposit_eth(job_id, 10**18), f"{parties} parties, next")
                depositor.approve_token(token_address, 2 * 10**18 + 1)
                receipt = depositor.deposit_token(job_id, token_address, 10**18 + 1, approve=False)
                _row(rows, "depositToken", receipt, f"{parties} parties, first")
                receipt = depositor.deposit_token(job_id, token_address, 10**18, approve=False)
                _row(rows, "depositToken", receipt, f"{parties} parties, next")

                last = SettlementClient(contract, senders[addresses[-1]])
                remainder = (
                    2 * 10**18 + 7 - sum((2 * 10**18 + 7) * b // 10_000 for b in bps)
                )  # units spread one by one
                _row(
                    rows,
                    "withdrawEth",
                    last.withdraw_eth(job_id),
                    f"{parties} parties, remainder {remainder}",
                )
                _row(rows, "withdrawToken", last.withdraw_token(job_id, token_address), f"{parties} parties")
                if parties == 2:
                    depositor.deposit_eth(job_id, 10_000)
                    _row(rows, "withdrawEth", last.withdraw_eth(job_id), "2 parties, again (slots warm)")
    return rows


def print_rows(rows: list[dict[str, object]], title: str, *, as_json: bool) -> None:
    """Gas rows as JSON or as a table (shared with scripts/gas_report.py)."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=title)
    for column in ("contract", "function", "gas", "note"):
        table.add_column(column, justify="right" if column == "gas" else "left")
    for row in rows:
        table.add_row(str(row["contract"]), str(row["function"]), f"{row['gas']:,}", str(row["note"]))
    Console(width=140).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    title = "Settlement gas per operation (anvil, Berlin, solc 0.8.30, optimizer 200 runs)"
    print_rows(settlement_gas_rows(), title, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
