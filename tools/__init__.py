"""Developer and test tools, never shipped in the wheel: slither (static analysis of ``contracts/src``, run
outside the project's venv), the live API server of the tests and benchmarks (`tools.live_server`) and the
generator of the API client's ledger-format models (`tools.client_formats`)."""
