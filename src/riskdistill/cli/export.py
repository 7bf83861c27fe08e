"""``riskdistill export onnx`` (a student checkpoint as ONNX with a dynamic batch axis and a parity check)
and ``riskdistill data export nuscenes|bench2drive`` (a recorded route in another data format).

Thin: parse, call :mod:`riskdistill.models.export` / :mod:`riskdistill.data.adapters`, print.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from riskdistill.cli.common import fail

app = typer.Typer(help="Export a trained student (ONNX).", no_args_is_help=True)
data_app = typer.Typer(help="Export a recorded route in another data format.", no_args_is_help=True)
console = Console()


@app.command("onnx")
def onnx(
    checkpoint: Path = typer.Argument(
        ..., help="Student checkpoint folder (model.safetensors + config.json)."
    ),
    out: Path = typer.Option(..., "--out", help="Output .onnx file."),
    risk: bool = typer.Option(True, "--risk/--no-risk", help="Also output the RiskHead's BEV risk map."),
    rig: str | None = typer.Option(
        None, "--rig", help="Rig for the example inputs (default: the checkpoint's)."
    ),
    image_dtype: str = typer.Option("uint8", "--image-dtype", help="uint8 (0-255, as drivers feed) | float."),
    fixed_batch: int | None = typer.Option(
        None, "--fixed-batch", help="Export a fixed batch size instead of the dynamic batch axis."
    ),
    check_batch: list[int] = typer.Option([1, 4], "--check-batch", help="Batch sizes of the parity check."),
    tolerance: float = typer.Option(1e-3, "--tolerance", help="Largest allowed |ONNX - PyTorch| difference."),
) -> None:
    """Export the student's driving path (waypoints, optionally the risk map) to ONNX and check it: the file
    runs in onnxruntime at each --check-batch size and matches PyTorch within --tolerance (exit 1 if not)."""
    from riskdistill.config import ConfigError
    from riskdistill.contracts.rig import load_rig
    from riskdistill.evaluation.drivers import StudentDriverFactory
    from riskdistill.models import load_student
    from riskdistill.models.export import example_observation, export_onnx, onnx_parity

    if image_dtype not in ("uint8", "float"):
        fail(f"--image-dtype must be uint8 or float, got {image_dtype!r}")
    if fixed_batch is not None and fixed_batch < 1:
        fail(f"--fixed-batch must be >= 1, got {fixed_batch}")
    try:
        student = load_student(checkpoint).eval()
        rig_name = rig or StudentDriverFactory(str(checkpoint.resolve())).checkpoint_rig()
        rig_obj = load_rig(rig_name)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if risk and not student.has_risk_head:
        fail(f"{checkpoint}: the student has no RiskHead; export with --no-risk")
    uint8 = image_dtype == "uint8"
    try:
        example = example_observation(student, rig_obj, fixed_batch or 2, seed=0, uint8_images=uint8)
    except KeyError as exc:
        fail(str(exc).strip("'\""))
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(student, out, with_risk=risk, example_obs=example, dynamic_batch=fixed_batch is None)
    sizes = [fixed_batch] if fixed_batch is not None else list(check_batch)
    rows = onnx_parity(
        student,
        out,
        [example_observation(student, rig_obj, b, 100 + b, uint8) for b in sizes],
        with_risk=risk,
    )
    table = Table(title=f"ONNX vs PyTorch ({out.name}, onnxruntime CPU, rig {rig_obj.name})")
    keys = [k for k in rows[0] if k != "batch"]
    table.add_column("batch", justify="right")
    for k in keys:
        table.add_column(k.replace("_", " "), justify="right")
    for r in rows:
        table.add_row(str(int(r["batch"])), *(f"{r[k]:.2e}" for k in keys))
    console.print(table)
    worst = max(r[k] for r in rows for k in keys)
    axis = f"fixed batch {fixed_batch}" if fixed_batch is not None else "dynamic batch axis"
    console.print(f"wrote {out} ({axis}, {out.stat().st_size / 1e6:.1f} MB); largest difference {worst:.2e}")
    if not worst <= tolerance:
        console.print(f"[red]parity check failed[/]: {worst:.2e} > --tolerance {tolerance:g}")
        raise typer.Exit(1)


@data_app.command("nuscenes")
def nuscenes(
    directory: Path = typer.Argument(..., help="A recorded data set folder."),
    route: str = typer.Option(..., "--route", help="Route id to export."),
    out: Path = typer.Option(
        ..., "--out", help="Output root (tables in OUT/<version>, images in OUT/samples)."
    ),
    version: str | None = typer.Option(None, "--version", help="nuScenes version folder name."),
) -> None:
    """Write one recorded route as a one-scene nuScenes-style data set (readable by the nuScenes devkit)."""
    from riskdistill.data.adapters.nuscenes import DEFAULT_VERSION, export_nuscenes_scene
    from riskdistill.data.storage import DataError, DatasetError

    try:
        path = export_nuscenes_scene(directory, route, out, version=version or DEFAULT_VERSION)
    except (DataError, DatasetError) as exc:
        fail(str(exc))
    console.print(f"wrote {path} (tables in {path / (version or DEFAULT_VERSION)})", highlight=False)


@data_app.command("bench2drive")
def bench2drive(
    directory: Path = typer.Argument(..., help="A recorded data set folder."),
    route: str = typer.Option(..., "--route", help="Route id to export."),
    out: Path = typer.Option(..., "--out", help="Output clip folder (anno/, camera/rgb_*/)."),
) -> None:
    """Write one recorded route as a Bench2Drive clip folder (CARLA's y-right frame)."""
    from riskdistill.data.adapters.bench2drive import export_bench2drive_clip
    from riskdistill.data.storage import DataError, DatasetError

    try:
        path = export_bench2drive_clip(directory, route, out)
    except (DataError, DatasetError) as exc:
        fail(str(exc))
    console.print(f"wrote {path}", highlight=False)
