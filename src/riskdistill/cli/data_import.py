"""``riskdistill data import``: real data (Bench2Drive clips, nuScenes scenes) -> a recorded data set (v1).

``import_data`` is a plain function with Typer options; the main app registers it as ``data import``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from riskdistill.cli.common import fail

console = Console()


def import_data(
    source: str = typer.Argument(..., help="Data source: 'bench2drive' or 'nuscenes'."),
    path: Path = typer.Argument(
        ..., help="bench2drive: a clip folder (anno/, camera/) or a folder of clips; nuscenes: the dataroot."
    ),
    out: Path = typer.Option(..., "--out", help="Output data set folder (rerun to resume or to add routes)."),
    version: str = typer.Option(
        "v1.0-mini", "--version", help="nuscenes: table version (folder in dataroot)."
    ),
    scenes: list[str] = typer.Option(
        [], "--scene", help="nuscenes: scene name to import (repeat the option; default: every scene)."
    ),
    image_hw: tuple[int, int] | None = typer.Option(
        None,
        "--image-hw",
        help="Resize to H W keeping the horizontal field of view (default: keep the size).",
    ),
    cameras: list[str] = typer.Option(
        [], "--camera", help="Camera to keep, in order (repeat the option; default: every camera)."
    ),
    every: int = typer.Option(1, "--every", help="bench2drive: keep every N-th 10 Hz frame (5 = 2 Hz)."),
    jpeg_quality: int = typer.Option(90, "--jpeg-quality", help="JPEG quality 1-100 of re-encoded images."),
) -> None:
    """Import real driving data as a recorded data set: images, annotations, frames.parquet, manifest.json.

    Fields real data lacks are computed (ego future from the poses, 2D boxes by projecting the 3D boxes) or
    approximated (nuScenes command and target point); see docs/adapters.md, "Importing real data"."""
    from riskdistill.config import ConfigError
    from riskdistill.data.adapters import IMPORTERS, ImportRequest
    from riskdistill.data.storage import DataError

    if source not in IMPORTERS:
        fail(f"unknown source {source!r}; valid sources: {IMPORTERS.names()}")
    if not path.exists():
        fail(f"{path}: does not exist")
    if every < 1:
        fail(f"--every must be >= 1, got {every}")
    if not 1 <= jpeg_quality <= 100:
        fail(f"--jpeg-quality must be in 1..100, got {jpeg_quality}")
    if image_hw is not None and min(image_hw) < 1:
        fail(f"--image-hw must be positive, got {list(image_hw)}")
    request = ImportRequest(
        image_hw=tuple(image_hw) if image_hw is not None else None,
        cameras=tuple(cameras) or None,
        every_n_steps=every,
        jpeg_quality=jpeg_quality,
        scenes=tuple(scenes) or None,
        version=version,
    )
    try:
        res = IMPORTERS.get(source)(path, out, request)
    except ImportError as exc:
        fail(str(exc))
    except (DataError, ValueError, ConfigError) as exc:
        fail(str(exc))
    console.print(
        f"[green]imported[/] {len(res.imported)} route(s) in {res.wall_s:.0f} s, {len(res.skipped)} already "
        f"done; data set: {res.n_routes} routes, {res.n_frames} frames -> {out} "
        f"(check it with: riskdistill data validate {out})"
    )
