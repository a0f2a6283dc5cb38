"""Presentation layer: the `secureflow` command line (and later the FastAPI service and web UI)."""
