"""``riskdistill demo``: the main job on the built-in simulator.

What runs today (the later pipeline stages - teacher labels, student training, the report - join as
they land): top-down previews of a few scenarios, the six surround cameras rendered on the CPU, a small
recorded training set (validated, one frame drawn), then the privileged expert evaluated in closed loop
on the benchmark suite (one route per scenario type with ``--quick``), with the Bench2Drive metrics.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()

PREVIEW_SCENARIOS = ("ParkingCrossingPedestrian", "SignalizedJunctionLeftTurn", "ConstructionObstacleTwoWays")


def render_cameras(scenario: str, out: Path, seed: int = 0, steps: int = 40) -> None:
    """Drive ``steps`` steps with the expert, then render the Bench2Drive rig at 256x704 as a mosaic."""
    from riskdistill.sim.expert import ExpertDriver
    from riskdistill.sim.rollout import run_route
    from riskdistill.sim.scenarios import build_scenario
    from riskdistill.sim.sensors import CameraRenderer, load_rig, resize_rig
    from riskdistill.viz.cameras import render_camera_mosaic
    from riskdistill.viz.topdown import save_png

    instance = build_scenario(scenario, seed)
    run_route(instance, ExpertDriver, max_steps=steps)
    rig = resize_rig(load_rig("bench2drive"), 256, 704)
    frame = CameraRenderer(instance.layout.road_map, rig, weather=instance.weather).render(instance.world)
    save_png(render_camera_mosaic(frame.rgb, frame.camera_names), out)


def demo(
    out: Path = typer.Option(None, "--out", help="Run folder (default: runs/demo-<time>)."),
    quick: bool = typer.Option(False, "--quick", help="A few minutes: fewer routes."),
    workers: int = typer.Option(2, "--workers"),
) -> None:
    """Run the end-to-end demo on the built-in simulator and print where the outputs are."""
    from riskdistill.cli.evaluate import print_summary
    from riskdistill.data import record_suite, validate_dataset
    from riskdistill.evaluation.closed_loop import evaluate_suite
    from riskdistill.runs import create_run_dir
    from riskdistill.sim.scenarios import REGISTRY
    from riskdistill.sim.suites import Suite, load_suite
    from riskdistill.viz.frame import save_frame_png
    from riskdistill.viz.preview import render_preview

    out = out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    create_run_dir(out, "demo", {"quick": quick, "workers": workers})
    timings: list[tuple[str, float]] = []

    t0 = time.perf_counter()
    previews = [s for s in PREVIEW_SCENARIOS if s in REGISTRY][: 1 if quick else 3]
    for name in previews:
        log = render_preview(name, 0, out / "previews" / f"{name}.gif")
        console.print(f"preview {name}: {log.end.value}, RC {log.route_completion_pct:.0f}%")
    timings.append(("scenario previews", time.perf_counter() - t0))

    t0 = time.perf_counter()
    cameras_png = out / "cameras.png"
    render_cameras(previews[0] if previews else "PedestrianCrossing", cameras_png)
    console.print(f"cameras: {cameras_png}")
    timings.append(("camera rendering", time.perf_counter() - t0))

    t0 = time.perf_counter()
    train = load_suite("train").spread(2 if quick else 8)
    record_dir = out / "data" / "train"
    res = record_suite(
        train, "bench2drive", record_dir, image_hw=(128, 352), every_n_steps=5, workers=workers
    )
    problems = validate_dataset(record_dir)
    save_frame_png(record_dir, min(10, max(res.n_frames - 1, 0)), out / "frame.png")
    console.print(
        f"recorded {res.n_frames} frames of {len(res.recorded)} train routes -> {record_dir} "
        f"({'valid' if not problems else f'{len(problems)} problem(s)'}); frame view: {out / 'frame.png'}"
    )
    timings.append((f"recording ({len(train.routes)} routes)", time.perf_counter() - t0))

    t0 = time.perf_counter()
    bench = load_suite("bench")
    if quick:
        first: dict[str, object] = {}
        for r in bench.routes:
            first.setdefault(r.scenario, r)
        bench = Suite(
            name="bench-quick", description="first bench route per scenario type", routes=list(first.values())
        )
    _, summary = evaluate_suite(bench, "expert", out / "expert_closed_loop", workers=workers)
    timings.append((f"expert closed loop ({len(bench.routes)} routes)", time.perf_counter() - t0))

    print_summary(summary, f"expert on {bench.name}")
    table = Table(title="stage timings")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, sec in timings:
        table.add_row(stage, f"{sec:.1f}")
    console.print(table)
    console.print(f"outputs: {out}")
