"""``riskdistill data ...``: look at and check recorded data sets; ``riskdistill sim record``: record one.

``record`` is a plain function with Typer options, registered by the main app as ``sim record``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from riskdistill.cli.common import fail

app = typer.Typer(help="Recorded driving data sets (see docs/data-format.md).", no_args_is_help=True)
console = Console()


def _size(n_bytes: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000.0
    return ""


@app.command("info")
def info(directory: Path = typer.Argument(..., help="A recorded data set folder.")) -> None:
    """Counts, scenarios, size on disk and camera rig of a recorded data set."""
    from riskdistill.data.storage import DatasetError, RecordedDataset

    try:
        ds = RecordedDataset(directory)
    except DatasetError as exc:
        fail(str(exc))
    d = ds.info()
    summary = Table(title=f"data set {directory}", show_header=False)
    summary.add_column("field")
    summary.add_column("value", overflow="fold")
    summary.add_row("format version", str(d["format_version"]))
    summary.add_row("suite", f"{d['suite']} ({d['routes']} of {d['suite_routes']} routes recorded)")
    summary.add_row("frames", str(d["frames"]))
    summary.add_row("images", f"{d['images']} ({d['image_hw'][0]}x{d['image_hw'][1]}, "
                    f"JPEG quality {d['settings'].get('jpeg_quality')})")  # fmt: skip
    summary.add_row("every n steps", str(d["settings"].get("every_n_steps")))
    summary.add_row("size on disk", _size(d["size_bytes"]))
    summary.add_row("failed routes", ", ".join(d["failed_routes"]) or "none")
    summary.add_row("created", f"{d['created'].get('utc')} (git {d['created'].get('git_commit') or '?'})")
    console.print(summary)

    scen = Table(title=f"{len(d['scenarios'])} scenario types")
    for col in ("scenario", "routes", "frames"):
        scen.add_column(col, justify="right" if col != "scenario" else "left")
    for name, c in d["scenarios"].items():
        scen.add_row(name, str(c["routes"]), str(c["frames"]))
    console.print(scen)

    rig = d["rig"]
    cams = Table(title=f"rig {rig['name']}")
    for col in ("camera", "x m", "y m", "z m", "yaw", "pitch", "hfov", "size"):
        cams.add_column(col, justify="right" if col != "camera" else "left")
    for c in rig["cameras"]:
        cams.add_row(
            c["name"],
            f"{c['x_m']:.2f}",
            f"{c['y_m']:.2f}",
            f"{c['z_m']:.2f}",
            f"{c['yaw_deg']:.0f}",
            f"{c['pitch_deg']:.0f}",
            f"{c['hfov_deg']:.0f}",
            f"{c['width_px']}x{c['height_px']}",
        )
    console.print(cams)


@app.command("validate")
def validate(
    directory: Path = typer.Argument(..., help="A recorded data set folder."),
    no_hashes: bool = typer.Option(False, "--no-hashes", help="Skip the sha256 check of every file."),
) -> None:
    """Check a recorded data set: manifest, file hashes, table schema, every frame's files, calibration.

    Exit code 0 and "OK" when sound; 1 with the list of problems otherwise.
    """
    from riskdistill.data.storage import validate_dataset

    problems = validate_dataset(directory, check_hashes=not no_hashes)
    if problems:
        for p in problems:
            console.print(f"[red]-[/] {p}", highlight=False, soft_wrap=True)
        console.print(f"[bold red]{len(problems)} problem(s)[/] in {directory}")
        raise typer.Exit(1)
    console.print("OK")


def record(
    suite: str = typer.Option(..., "--suite", help="train | val | bench | path to a suite JSON."),
    rig: str = typer.Option("bench2drive", "--rig", help="bench2drive | nuscenes | path to a rig JSON."),
    out: Path = typer.Option(..., "--out", help="Output folder (resumable: rerun to continue)."),
    workers: int = typer.Option(2, "--workers", help="Parallel route workers."),
    image_h: int = typer.Option(128, "--image-h", help="Image height in pixels."),
    image_w: int = typer.Option(352, "--image-w", help="Image width in pixels."),
    every: int = typer.Option(1, "--every", help="Record every N-th 10 Hz step (5 = 2 Hz)."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N routes."),
    jpeg_quality: int = typer.Option(90, "--jpeg-quality", help="JPEG quality 1-100."),
    bench2drive_jpeg: bool = typer.Option(
        False, "--bench2drive-jpeg", help="JPEG quality 20, as Bench2Drive stores its images."
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Cut every rollout after N steps."),
    steer_noise: float = typer.Option(
        0.0,
        "--steer-noise",
        min=0.0,
        max=1.0,
        help="Recovery data: bursts of steering noise up to this size; labels stay the expert's plan.",
    ),
    crossing_walkers: int = typer.Option(
        0,
        "--crossing-walkers",
        min=0,
        help="Extra pedestrians per route who cross the route ahead (training data; 0: the suite as is).",
    ),
    dagger: Path | None = typer.Option(
        None,
        "--dagger",
        help="DAgger-style recording: this student checkpoint drives, the expert's plan from where the car "
        "is stays the label (sim/dagger.py).",
    ),
    dagger_expert_share: float = typer.Option(
        0.0, "--dagger-expert-share", min=0.0, max=1.0, help="Share of 4 s segments the expert drives."
    ),
    dagger_takeover_s: float | None = typer.Option(
        None,
        "--dagger-takeover-s",
        min=0.0,
        help="The expert drives a segment once the student has stood still this many seconds while the "
        "expert would drive (a stuck student records the way out, not the wait).",
    ),
) -> None:
    """Record the expert driving a route suite: camera images, annotations, frames.parquet, manifest.json.

    With --dagger a trained student drives instead (the expert drives --dagger-expert-share of the time),
    and every frame is labelled with the expert's plan from the state the student brought the car into.
    """
    from riskdistill.config import ConfigError
    from riskdistill.contracts.rig import load_rig
    from riskdistill.data.format import BENCH2DRIVE_JPEG_QUALITY
    from riskdistill.data.record import record_suite
    from riskdistill.sim.suites import load_suite

    try:
        suite_obj = load_suite(suite)
    except ConfigError as exc:
        fail(f"unknown suite: {exc}")
    try:
        rig_obj = load_rig(rig)
    except ConfigError as exc:
        fail(f"unknown rig: {exc}")
    if bench2drive_jpeg:
        jpeg_quality = BENCH2DRIVE_JPEG_QUALITY
    checks = [("--workers", workers, 1), ("--image-h", image_h, 1), ("--image-w", image_w, 1)]
    checks += [("--every", every, 1), ("--limit", limit, 0), ("--max-steps", max_steps, 1)]
    for name, value, lo in checks:
        if value is not None and value < lo:
            fail(f"{name} must be >= {lo}, got {value}")
    if not 1 <= jpeg_quality <= 100:
        fail(f"--jpeg-quality must be in 1..100, got {jpeg_quality}")
    learner, learner_name = (None, None) if dagger is None else dagger_learner(dagger)
    try:
        res = record_suite(
            suite_obj,
            rig_obj,
            out,
            image_hw=(image_h, image_w),
            every_n_steps=every,
            workers=workers,
            limit=limit,
            jpeg_quality=jpeg_quality,
            max_steps=max_steps,
            steer_noise=steer_noise,
            learner=learner,
            learner_name=learner_name,
            expert_share=dagger_expert_share,
            takeover_s=dagger_takeover_s,
            crossing_walkers=crossing_walkers,
        )
    except (ValueError, ConfigError) as exc:
        fail(str(exc))
    console.print(
        f"[green]recorded[/] {len(res.recorded)} route(s) ({res.frames_recorded} frames) "
        f"in {res.wall_s:.0f} s, "
        f"{len(res.skipped)} already done; data set: {res.n_routes} routes, {res.n_frames} frames -> {out}"
    )
    if res.failed:
        console.print(f"[red]{len(res.failed)} route(s) failed[/] (listed in manifest.json failed_routes):")
        for f in res.failed:
            console.print(f"  {f['route_id']} ({f['stage']}): {f['error']}", highlight=False)
        raise typer.Exit(1)


def dagger_learner(checkpoint: Path) -> tuple[object, str]:
    """The driver factory of the student checkpoint that drives a DAgger recording (checked and, for the
    onnx engine, exported once), and its name in the recording's settings: the folder and its weights hash."""
    from riskdistill.data.encode import sha256_file
    from riskdistill.evaluation.drivers import is_checkpoint_dir, make_driver_factory

    if not is_checkpoint_dir(str(checkpoint)):
        fail(f"--dagger {checkpoint}: not a checkpoint folder (model.safetensors and config.json)")
    factory = make_driver_factory(str(checkpoint))
    try:
        factory.check()
        factory.prepare()
    except ValueError as exc:
        fail(str(exc))
    digest = sha256_file(checkpoint / "model.safetensors")[:16]
    return factory, f"{checkpoint.resolve()} (model.safetensors sha256 {digest})"
