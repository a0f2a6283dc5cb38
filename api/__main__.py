"""``python -m secureflow.api`` runs the ``secureflow`` command line."""

from secureflow.api.cli.main import app

app(prog_name="secureflow")
