from graph.cli.main import app

app(prog_name="mpm")
