"""``riskdistill demo``, ``riskdistill experiment`` and ``riskdistill experiment merge``: the RSD study end to
end (see ``experiment/``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from riskdistill.cli.common import comma_list, fail

console = Console()


def _fmt(v: Any, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def results_table(result: Any) -> Table:
    """Closed-loop Driving Score / Success Rate / Route Completion per student and rig, and the open-loop
    L2, collision rate and risk-map error of each student on the recorded bench frames."""
    table = Table(title="closed loop (bench routes) | open loop (recorded bench frames)")
    for col in ("run", "rig", "DS", "SR %", "RC %", "L2@2s m", "coll@2s %", "risk L1", "risk r"):
        table.add_column(col, justify="left" if col in ("run", "rig") else "right")
    for key, summ in result.summaries.items():
        name, rig = key.split("/", 1)
        ol = result.open_loop.get(name, {}) if rig == "nominal" else {}
        table.add_row(
            name,
            rig,
            _fmt(summ.get("driving_score"), 1),
            _fmt(summ.get("success_rate"), 1),
            _fmt(summ.get("route_completion"), 1),
            _fmt(ol.get("l2_2s")),
            _fmt(ol.get("collision_rate_pct_2s"), 1),
            _fmt(ol.get("risk_l1"), 3),
            _fmt(ol.get("risk_pearson")),
        )
    return table


def parse_seeds(text: str) -> list[int]:
    """``"1"`` / ``"0,2"`` -> ``[1]`` / ``[0, 2]``."""
    try:
        return [int(x) for x in comma_list(text)]
    except ValueError:
        fail(f"--seeds takes comma-separated integers, got {text!r}")


def resolve_config(
    preset: str, config: Path | None, overrides: dict[str, Any], sets: list[str], seeds: str | None = None
) -> Any:
    """The ExperimentConfig of ``--config`` (else ``--preset``) with ``overrides``, ``--set`` and ``--seeds``;
    a bad one fails the command with the loader's message."""
    from riskdistill.config import ConfigError, apply_overrides, deep_merge
    from riskdistill.experiment import ExperimentConfig, config_for_seeds, experiment_config

    try:
        if config is not None:
            base = ExperimentConfig.load(config).to_dict()
        else:
            base = experiment_config(preset).to_dict()
        merged = apply_overrides(deep_merge(base, overrides), sets)
        cfg = ExperimentConfig.from_dict(merged, source=str(config or f"preset {preset!r}"))
        if seeds is not None:
            cfg = config_for_seeds(cfg, parse_seeds(seeds))
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    return cfg


def _run(
    preset: str,
    config: Path | None,
    out: Path | None,
    overrides: dict[str, Any],
    sets: list[str],
    seeds: str | None = None,
    execution: Any = None,
) -> None:
    from riskdistill.experiment import run_experiment

    cfg = resolve_config(preset, config, overrides, sets, seeds)
    out = out or Path("runs") / f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}"
    console.print(f"[bold]riskdistill {cfg.name}[/] (seeds {cfg.seeds}) -> {out}")
    try:
        result = run_experiment(cfg, out, console, execution=execution)
    except ValueError as exc:
        fail(str(exc))
    console.print(results_table(result))
    console.print(result.stages.timing_table())
    console.print(f"report: {result.report}")
    console.print(f"outputs: {out}")


def demo(
    out: Path = typer.Option(
        None, "--out", help="Output folder (default: runs/demo-<time>); rerun to resume."
    ),
    quick: bool = typer.Option(False, "--quick", help="The same pipeline in a few minutes (tiny budgets)."),
    workers: int = typer.Option(2, "--workers", help="Processes for recording and closed-loop evaluation."),
) -> None:
    """The main job on the built-in simulator: record, label with the oracle teacher, train a baseline and an
    RSD student, evaluate both in open and closed loop (nominal and a shifted rig), write the HTML report."""
    _run("quick" if quick else "demo", None, out, {"workers": workers}, [])


experiment_app = typer.Typer(
    help="The RSD study: seeds x {baseline, RSD, controls} x {nominal rig, shifted rigs} on the bench suite, "
    "resumable and splittable by seed; `experiment merge` combines the parts into a result folder.",
    invoke_without_command=True,
)


@experiment_app.callback(invoke_without_command=True)
def experiment(
    ctx: typer.Context,
    preset: str = typer.Option(
        "full", "--preset", help="demo | quick | study | study-128x352 | full (ignored with --config)."
    ),
    config: Path = typer.Option(None, "--config", help="An ExperimentConfig JSON file."),
    out: Path = typer.Option(None, "--out", help="Output folder; rerun with the same folder to resume."),
    set_: list[str] = typer.Option([], "--set", help="Dotted overrides, e.g. --set train.max_steps=2000."),
    seeds: str = typer.Option(
        None, "--seeds", help="Run only these seeds of the study (e.g. 1 or 0,2): one part, for `merge`."
    ),
    ray_address: str = typer.Option(
        None,
        "--ray-address",
        help="Run training jobs and closed-loop route batches as Ray tasks: 'auto', "
        "'ray://host:10001', or 'local' (a Ray on this machine). Results equal a local run.",
    ),
    ray_routes_per_task: int = typer.Option(
        4, "--ray-routes-per-task", min=1, help="Closed-loop routes per task."
    ),
    ray_train_cpus: float = typer.Option(
        None, "--ray-train-cpus", help="CPUs of a training task (default: this process's torch threads)."
    ),
    ray_train_gpus: float = typer.Option(0.0, "--ray-train-gpus", help="GPUs of a training task."),
) -> None:
    """The study: seeds x {baseline, RSD, controls} x {nominal rig, shifted rigs}, on the bench suite with
    its held-out scenario and layout; ends in the comparison report with confidence intervals. `--seeds`
    runs one part of a study split over machines (merge the parts with `riskdistill experiment merge`)."""
    if ctx.invoked_subcommand is not None:
        return
    from riskdistill.experiment import Execution

    execution = Execution(
        ray_address=ray_address,
        train_cpus=ray_train_cpus,
        train_gpus=ray_train_gpus,
        routes_per_task=ray_routes_per_task,
    )
    _run(preset, config, out, {}, set_, seeds, execution)


@experiment_app.command("merge")
def merge(
    parts: list[Path] = typer.Argument(
        ...,
        help="Experiment output folders (parts of one study), or an earlier result folder of the study "
        "(its seeds count as a part: seeds from several sessions add up).",
    ),
    out: Path = typer.Option(..., "--out", help="The result folder, e.g. results/<study-name>."),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="Merge what finished and list the missing parts (default: refuse)."
    ),
    name: str = typer.Option(None, "--name", help="The study's name (default: the --out folder's name)."),
) -> None:
    """Merge finished study parts (seeds, or variants of a seed) into one result folder: statistics over
    seeds and routes, diagnostics, per-seed and per-route files and a README. Parts of different studies
    (config, git commit, route suite) are refused, naming the field; missing parts are refused unless
    --allow-missing."""
    from riskdistill.experiment import MergeError, merge_study

    try:
        res = merge_study(parts, out, allow_missing=allow_missing, name=name)
    except MergeError as exc:
        fail(str(exc))
    typer.echo((out / "comparison.md").read_text())
    if res.missing:
        console.print(f"[bold yellow]{len(res.missing)} missing cell(s)[/], listed in {out / 'study.json'}")
    console.print(f"written: {out} (README.md, comparison.md, diagnostics.md, seeds/, routes/)")


@experiment_app.command("reuse-data")
def reuse_data_cmd(
    source: Path = typer.Argument(..., help="A finished experiment folder (recorded and labelled)."),
    out: Path = typer.Argument(..., help="The new part's output folder (no data/ yet)."),
    preset: str = typer.Option(
        None, "--preset", help="The part's preset (demo | quick | study | study-128x352 | full)."
    ),
    config: Path = typer.Option(
        None, "--config", help="The part's ExperimentConfig JSON, e.g. a study's results/<study>/config.json."
    ),
    set_: list[str] = typer.Option([], "--set", help="The part's dotted overrides."),
    commit: str = typer.Option(
        None, "--commit", help="The git commit the part runs at; a source recorded at another is refused."
    ),
) -> None:
    """Start a part of a study from another part's recorded and labelled data (hard links): the data plan,
    teacher, image size and teacher grid must equal the part's (--config or --preset with --set), and the
    source must have run on one commit (--commit). Then run the part with `riskdistill experiment --out OUT`:
    it starts at training."""
    from riskdistill.experiment.reuse import reuse_data

    if (preset is None) == (config is None):
        fail("give the part's configuration with exactly one of --preset and --config")
    cfg = resolve_config(preset, config, {}, set_)
    try:
        res = reuse_data(source, out, cfg, commit=commit)
    except ValueError as exc:
        fail(str(exc))
    console.print(
        f"{out}: stages {', '.join(res.stages)} taken from {source} "
        f"({res.files} files linked, {res.copied} of them copied)"
    )
