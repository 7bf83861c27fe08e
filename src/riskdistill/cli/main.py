"""The ``riskdistill`` command."""

from __future__ import annotations

import typer

from riskdistill.cli import data, data_import, evaluate, experiment, sim
from riskdistill.cli import export as export_cli
from riskdistill.cli import label as label_cli
from riskdistill.cli import train as train_cli
from riskdistill.cli.report import frame, report, rerun, rerun_route

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
data.app.add_typer(export_cli.data_app, name="export")
app.add_typer(export_cli.app, name="export")

viz_app = typer.Typer(help="Pictures of recorded data.", no_args_is_help=True)
viz_app.command("frame")(frame)
viz_app.command("rerun")(rerun)
viz_app.command("rerun-route")(rerun_route)
app.add_typer(viz_app, name="viz")
app.command("demo")(experiment.demo)
app.add_typer(experiment.experiment_app, name="experiment")
app.command("label")(label_cli.label)
app.command("train")(train_cli.train)
app.command("report")(report)

if __name__ == "__main__":
    app()
