"""``riskdistill report`` (the HTML evaluation report) and ``riskdistill viz rerun`` (a route as ``.rrd``).

Thin: parse, call :mod:`riskdistill.viz.report` / :mod:`riskdistill.viz.rerun_log`, print. See
``docs/report.md``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from riskdistill.cli.common import fail
from riskdistill.contracts.labels import find_label_dir


def report(
    closed_loop: list[Path] = typer.Option(
        [], "--closed-loop", help="Closed-loop result folder; LABEL[:CONDITION]=DIR names it (repeatable)."
    ),
    open_loop: list[Path] = typer.Option([], "--open-loop", help="Open-loop result JSON (repeatable)."),
    compare: Path | None = typer.Option(
        None, "--compare", help="Comparison JSON (`riskdistill eval compare`)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Recorded data set for camera mosaics and BEV panels."
    ),
    labels: Path | None = typer.Option(None, "--labels", help="Teacher label folder (maps/, records/)."),
    checkpoint: list[Path] = typer.Option(
        [], "--checkpoint", help="Student checkpoint for predicted risk (repeatable)."
    ),
    training: list[Path] = typer.Option(
        [], "--training", help="Training run folder with metrics.csv; LABEL=DIR names it (repeatable)."
    ),
    out: Path = typer.Option(Path("reports"), "--out", help="Output folder; the report is OUT/report.html."),
    title: str = typer.Option("riskdistill evaluation report", "--title"),
    frames: int = typer.Option(3, "--frames", help="Sample frames to draw from --data."),
    thumbnails: int = typer.Option(24, "--thumbnails", help="Route thumbnails per closed-loop run at most."),
    route_pages: int = typer.Option(
        200, "--route-pages", help="Route pages per closed-loop run at most (failures first)."
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Processes that render the route pages (the same pages with any number)."
    ),
) -> None:
    """Build one self-contained HTML report from evaluation results (sections without inputs are omitted)."""
    from riskdistill.viz.report import build_report
    from riskdistill.viz.report_data import ReportInputError, ReportInputs

    if labels is None:
        labels = find_label_dir(data)
    if not (closed_loop or open_loop or compare or data or training):
        fail("nothing to report: give --closed-loop, --open-loop, --compare, --data or --training")
    try:
        inputs = ReportInputs.from_folders(
            closed_loop=list(closed_loop),
            open_loop=list(open_loop),
            compare=compare,
            data=data,
            labels=labels,
            checkpoints=list(checkpoint),
            training=list(training),
            title=title,
            n_sample_frames=frames,
            max_thumbnails=thumbnails,
            max_route_pages=route_pages,
        )
    except ReportInputError as exc:
        fail(str(exc))
    path = build_report(inputs, out, workers=workers)
    print(f"wrote {path}")


def rerun(
    directory: Path = typer.Argument(..., help="Recorded data set."),
    route: str = typer.Option(..., "--route", help="Route id in the data set."),
    labels: Path | None = typer.Option(
        None, "--labels", help="Teacher label folder (default DIR/labels/risk)."
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Student checkpoint: log its predictions."
    ),
    out: Path | None = typer.Option(None, "--out", help="Output .rrd (default <route>.rrd)."),
) -> None:
    """Write a recorded route as a Rerun recording (cameras, BEV, teacher and predicted risk, trajectories,
    reasons); open it with `rerun FILE.rrd`."""
    from riskdistill.data.storage import DatasetError, RecordedDataset
    from riskdistill.viz.rerun_log import log_dataset_rrd

    if labels is None:
        labels = find_label_dir(directory)
    predictor, grid = None, None
    try:
        if checkpoint is not None:
            from riskdistill.viz.report_figures import student_predictor

            rig = RecordedDataset(directory).manifest.get("rig")
            rig_name = rig.get("name") if isinstance(rig, dict) else rig
            _, predictor, student_grid = student_predictor(checkpoint, rig_name)
            grid = None if labels is not None else student_grid
        path = log_dataset_rrd(
            directory, route, labels, out or Path(f"{route}.rrd"), predictor=predictor, grid=grid
        )
    except (DatasetError, KeyError, FileNotFoundError, ValueError) as exc:
        fail(str(exc).strip("'\""))
    print(f"wrote {path}  (open with: rerun {path})")


def rerun_route(
    run_dir: Path = typer.Argument(
        ..., help="Closed-loop result folder (riskdistill eval closed-loop --out)."
    ),
    route: str = typer.Option(..., "--route", help="Route id of that evaluation."),
    out: Path | None = typer.Option(None, "--out", help="Output .rrd (default <route>.rrd)."),
    every: int = typer.Option(1, "--every", help="Log every N-th simulator step (infractions always)."),
) -> None:
    """Drive an evaluated route again with the same driver and rig shift and write it as a Rerun recording
    (cameras, top-down view with the predicted risk, plan, infractions); open it with `rerun FILE.rrd`."""
    from riskdistill.viz.report_data import ReportInputError
    from riskdistill.viz.rerun_log import record_run_route_rrd

    try:
        path = record_run_route_rrd(run_dir, route, out or Path(f"{route}.rrd"), every=every)
    except (ReportInputError, KeyError, FileNotFoundError, ValueError) as exc:
        fail(str(exc).strip("'\""))
    print(f"wrote {path}  (open with: rerun {path})")


def frame(directory: Path, index: int = 0, out: Path = Path("frame.png")) -> None:
    """Draw one recorded frame: the six cameras beside a bird's-eye view of its annotation.

    Registered as ``riskdistill viz frame DIR --index N --out FILE.png``.
    """
    from riskdistill.data.storage import DatasetError
    from riskdistill.viz.frame import save_frame_png

    try:
        path = save_frame_png(directory, index, out)
    except (DatasetError, IndexError) as exc:
        fail(str(exc))
    print(f"wrote {path}")
