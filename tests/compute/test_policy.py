"""A member's consent policy (`secureflow.compute.policy`) on the SPU protocol a job names: ABY3 (three
parties, honest majority: any two of them could reconstruct a secret-shared value) only where the policy
lists it; an existing policy file keeps meaning SEMI2K only."""

from __future__ import annotations

from secureflow.compute.manifest import JobManifest
from secureflow.compute.policy import PartyPolicy, consent_refusals

A, B, C = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20
PSI = {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}}


def _three(protocol: str) -> JobManifest:
    return JobManifest.parse(
        {
            "parties": [
                {"name": "alice", "address": A},
                {"name": "bob", "address": B},
                {"name": "carol", "address": C},
            ],
            "datasets": {"raw": {"alice": "a.csv", "bob": "b.csv", "carol": "c.csv"}},
            "steps": [PSI],
            "spu_protocol": protocol,
        }
    )


def test_a_policy_consents_to_aby3_only_where_it_lists_it() -> None:
    reveal = PartyPolicy(reveal={"psi": (A, B, C)})
    assert consent_refusals(reveal, _three("SEMI2K"), A) == []
    [reason] = consent_refusals(reveal, _three("ABY3"), A)
    assert "SPU protocol ABY3, which this party's policy does not accept (spu_protocols: SEMI2K)" in reason
    both = PartyPolicy(reveal={"psi": (A, B, C)}, spu_protocols=("SEMI2K", "ABY3"))
    assert consent_refusals(both, _three("ABY3"), A) == []
    assert PartyPolicy.model_validate({"version": 1}).spu_protocols == ("SEMI2K",)  # a policy file of before
