"""``python -m amloop`` runs the ``amloop`` command line."""

from amloop.loop.cli import app

app(prog_name="amloop")
