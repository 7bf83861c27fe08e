"""The ``riskdistill`` command."""

from __future__ import annotations

import typer

from riskdistill.cli import data, data_import, demo, evaluate, sim
from riskdistill.viz.frame import frame_command

app = typer.Typer(
    name="riskdistill",
    help="Risk Semantic Distillation toolkit: simulate, label, train, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(sim.app, name="sim")
app.add_typer(evaluate.app, name="eval")
app.add_typer(data.app, name="data")
sim.app.command("record")(data.record)
data.app.command("import")(data_import.import_data)

viz_app = typer.Typer(help="Pictures of recorded data.", no_args_is_help=True)
viz_app.command("frame")(frame_command)
app.add_typer(viz_app, name="viz")
app.command("demo")(demo.demo)

if __name__ == "__main__":
    app()
