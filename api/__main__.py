"""``python -m api`` runs the ``secureflow`` command line."""

from api.cli.main import app

app(prog_name="secureflow")
