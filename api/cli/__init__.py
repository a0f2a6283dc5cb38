"""The ``secureflow`` command line: one root typer app (`main`) and its command groups (`job`, `settle`)."""
