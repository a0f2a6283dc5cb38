"""SecretFlow jobs: party workers, the algorithm registry and the job runner.

`compute` records steps through the ledger's small recording interface and never imports web3.
"""
