"""The ``secureflow`` command line: one root typer app (`main`) and its command groups (`job`, `settle`)."""

from secureflow.api.cli import usage as _usage  # noqa: F401  (CLI-style usage lines for every command)
