"""``python -m loop`` runs the ``amloop`` command line."""

from loop.cli import app

app(prog_name="amloop")
