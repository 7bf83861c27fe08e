"""``riskdistill sim ...``: look at the built-in simulator's scenarios and suites."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from riskdistill.cli.common import fail

app = typer.Typer(help="The built-in driving simulator.", no_args_is_help=True)
console = Console()


@app.command("scenarios")
def scenarios() -> None:
    """List the scenario types with their abilities and layout families."""
    from riskdistill.sim.scenarios import REGISTRY

    table = Table(title=f"{len(REGISTRY)} scenario types")
    table.add_column("scenario", no_wrap=True)
    for col in ("abilities", "layout families", "summary"):
        table.add_column(col, overflow="fold")
    for name in sorted(REGISTRY):
        sc = REGISTRY[name]
        table.add_row(name, ", ".join(str(a) for a in sc.abilities), ", ".join(sc.families), sc.summary)
    Console().print(table)  # created here so the terminal width (COLUMNS) is read at call time


@app.command("suites")
def suites() -> None:
    """List the shipped route suites."""
    from riskdistill.sim.suites import SUITE_NAMES, load_suite

    table = Table(title="route suites")
    for col in ("suite", "routes", "scenario types", "seeds", "description"):
        table.add_column(col, overflow="fold")
    for name in SUITE_NAMES:
        s = load_suite(name)
        seeds = sorted(s.seeds())
        table.add_row(
            name,
            str(len(s.routes)),
            str(len({r.scenario for r in s.routes})),
            f"{seeds[0]}..{seeds[-1]}",
            s.description,
        )
    console.print(table)


@app.command("preview")
def preview(
    scenario: str = typer.Option(..., "--scenario", help="Scenario type (see `riskdistill sim scenarios`)."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(..., "--out", help="Output .gif (animation) or .png (one frame)."),
    family: str | None = typer.Option(None, "--family", help="Layout family override."),
    every: int = typer.Option(2, "--every", help="Keep every N-th simulation step in the animation."),
    size_px: int = typer.Option(384, "--size"),
) -> None:
    """Write a top-down animation (GIF) or image (PNG) of the expert driving a scenario."""
    from riskdistill.sim.scenarios import ScenarioError
    from riskdistill.viz.preview import render_preview

    if out.suffix.lower() not in (".gif", ".png"):
        fail(f"--out must end in .gif or .png, got {out.name!r}")
    try:
        log = render_preview(scenario, seed, out, family=family, every=every, size_px=size_px)
    except ScenarioError as exc:
        fail(str(exc))
    console.print(
        f"[green]wrote[/] {out}  ({log.end.value}, route completion {log.route_completion_pct:.1f}%, "
        f"{len(log.events)} infraction(s))"
    )


@app.command("export-routes")
def export_routes(
    suite: str = typer.Option("bench", "--suite", help="train | val | bench | path to a suite JSON."),
    out: Path = typer.Option(..., "--out", help="Output routes file (.xml)."),
) -> None:
    """Write a suite as a Bench2Drive routes XML (route id = position in the suite, CARLA frame)."""
    from riskdistill.config import ConfigError
    from riskdistill.evaluation.bench2drive_io import save_routes_xml
    from riskdistill.sim.suites import load_suite

    try:
        routes = list(enumerate(load_suite(suite).routes))
    except ConfigError as exc:
        fail(str(exc))
    save_routes_xml(out, routes)
    console.print(f"[green]wrote[/] {out}  ({len(routes)} routes)")


@app.command("make-suites")
def make_suites(
    out_dir: Path = typer.Option(None, "--out-dir", help="Default: the package's suites folder."),
) -> None:
    """Regenerate the shipped train/val/bench suites (deterministic; every instance is built once)."""
    from riskdistill.sim.suites import generate_suites, suite_path, write_suites

    target = out_dir or suite_path("train").parent
    suites_ = generate_suites(check=True)
    write_suites(target, suites_)
    for name, s in suites_.items():
        console.print(f"{name}: {len(s.routes)} routes -> {target / (name + '.json')}")
