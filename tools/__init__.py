"""Developer tools that run outside the project's venv: slither (static analysis of ``contracts/src``)."""
