"""``python -m mpm``: the same CLI as the ``mpm`` console script."""

from mpm.cli.main import app

app(prog_name="mpm")
