"""QBFT/IBFT nodes put 97+ bytes of validator data in ``extraData``; the POA option must cope with it.

A GoQuorum or Besu node cannot run here, so this test puts a small JSON-RPC
proxy in front of the real anvil that rewrites every block's ``extraData`` to
a QBFT-sized value (the only thing that differs for the client). Everything
else, including transactions, goes to anvil unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rpc_proxy import RpcProxy
from web3.exceptions import ExtraDataLengthError

from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.deploy import deploy_contracts
from secureflow.ledger.devchain import DEV_PRIVATE_KEYS, DevChain
from secureflow.ledger.nonces import ChainNonceSource

QBFT_EXTRA_DATA = "0x" + "f8" + "ab" * 96  # 97 bytes, like an RLP-encoded QBFT extraData


def _rewrite(payload: object) -> object:
    if isinstance(payload, list):
        return [_rewrite(item) for item in payload]
    if isinstance(payload, dict):
        result = payload.get("result")
        if isinstance(result, dict) and "extraData" in result:
            result["extraData"] = QBFT_EXTRA_DATA
    return payload


@pytest.fixture
def qbft_like_url(devchain: DevChain) -> Iterator[str]:
    with RpcProxy(devchain.rpc_url, rewrite=_rewrite) as proxy:
        yield proxy.url


def test_blocks_of_a_qbft_node_need_the_poa_option(qbft_like_url: str) -> None:
    plain = ChainClient(ChainConfig(rpc_url=qbft_like_url))
    with pytest.raises(ExtraDataLengthError):
        plain.w3.eth.get_block("latest")

    poa = ChainClient(ChainConfig(rpc_url=qbft_like_url, poa=True))
    block = poa.w3.eth.get_block("latest")
    assert len(block["proofOfAuthorityData"]) == 97


def test_deploy_and_transact_through_a_qbft_like_node(qbft_like_url: str, chain_snapshot: None) -> None:
    client = ChainClient(ChainConfig(rpc_url=qbft_like_url, poa=True, expected_chain_id=1337))
    sender = TransactionSender(client, DEV_PRIVATE_KEYS[0], ChainNonceSource(client.w3))
    deployment = deploy_contracts(client, sender)
    assert set(deployment.contracts) == {"ConsortiumRegistry", "AuditLedger", "Settlement"}
    assert client.w3.eth.get_block(deployment.deploy_block)["proofOfAuthorityData"]
