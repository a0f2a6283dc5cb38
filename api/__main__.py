"""``python -m api`` runs the ``secureflow`` command line."""

from api.cli import app

app(prog_name="secureflow")
