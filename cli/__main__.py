from mpm.cli.main import app

app(prog_name="mpm")
