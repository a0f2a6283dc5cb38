"""The chain side of secureflow: contracts, chain client, Merkle proofs and the ledger store.

`ledger` never imports SecretFlow; `compute` reaches it only through the small
recording interface, and `api` presents it.
"""
