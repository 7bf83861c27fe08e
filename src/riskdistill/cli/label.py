"""``riskdistill label``: a teacher over a recorded data set -> risk records, BEV risk maps and a label card.

``label`` is a plain function with Typer options, registered by the main app as ``riskdistill label``.
See ``docs/labelling.md``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from riskdistill.cli.common import comma_list, fail

console = Console()

GROUNDINGS = ("gt", "detector")


def _load_json(path: Path, what: str) -> dict[str, Any]:
    from riskdistill.io import load_json_object

    if not path.is_file():
        fail(f"{what} file not found: {path}")
    try:
        return load_json_object(path)
    except ValueError as exc:
        fail(str(exc))


def vlm_config_dict(
    base: dict[str, Any],
    backend: str | None,
    model: Path | None,
    model_name: str | None,
    server_url: str | None,
    cameras: str | None,
    prompt: str | None,
) -> dict[str, Any]:
    """The VLM teacher config from a JSON file's dict and the command-line overrides."""
    cfg = dict(base)
    b = dict(cfg.get("backend") or {})
    if backend is not None:
        if b.get("type") not in (None, backend):
            b = {}
        b["type"] = backend
    kind = b.get("type")
    if kind is None:
        kind = b["type"] = "openai" if server_url else "local"
    if kind in ("local", "vllm"):
        if model is not None:
            b["model_dir"] = str(model)
        if "model_dir" not in b:
            fail(f"--backend {kind} needs --model DIR (a local model folder)")
    elif kind == "openai":
        if server_url is not None:
            b["base_url"] = server_url
        name = model_name or (str(model) if model is not None else None)
        if name is not None:
            b["model"] = name
        if "model" not in b:
            fail("--backend openai needs --model-name NAME (the model the server serves)")
    cfg["backend"] = b
    if cameras is not None:
        cfg["cameras"] = cameras if cameras in ("front", "all") else comma_list(cameras)
    if prompt is not None:
        cfg["prompt"] = prompt
    return cfg


def label(
    data: Path = typer.Option(..., "--data", help="A recorded data set folder."),
    out: Path | None = typer.Option(
        None, "--out", help="Label folder (default: <data>/labels/risk, what the risk_map target reads)."
    ),
    teacher: str = typer.Option(
        "oracle", "--teacher", help="oracle | vlm | footprint (a control: every object at one score)."
    ),
    teacher_config: Path | None = typer.Option(
        None, "--teacher-config", help="JSON file: OracleConfig or VLMTeacherConfig fields."
    ),
    backend: str | None = typer.Option(None, "--backend", help="VLM backend: local | openai | vllm."),
    model: Path | None = typer.Option(None, "--model", help="VLM model folder (local, vllm backends)."),
    model_name: str | None = typer.Option(None, "--model-name", help="Model name on the server (openai)."),
    server_url: str | None = typer.Option(
        None, "--server-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."
    ),
    cameras: str | None = typer.Option(None, "--cameras", help="VLM cameras: front | all | CAM_A,CAM_B."),
    prompt: str | None = typer.Option(None, "--prompt", help="VLM prompt template id or .jinja path."),
    grounding: str = typer.Option("gt", "--grounding", help="VLM grounding: gt | detector."),
    detector_model: Path | None = typer.Option(
        None,
        "--detector-model",
        help="Detector folder for --grounding detector: OWLv2 or Grounding DINO (read from its config.json).",
    ),
    grid: str = typer.Option("tiny", "--grid", help="BEV grid preset (tiny | base) or a JSON file."),
    boundary_risk: float | None = typer.Option(
        None,
        "--boundary-risk",
        min=0.0,
        max=1.0,
        help="Risk just outside the drivable area (default: RasterConfig's, 0.35; 0: off).",
    ),
    shard: str = typer.Option("0/1", "--shard", help="This job's shard i/n (disjoint, covering)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes (oracle teacher)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Frames per task / per VLM batch."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most N frames of the shard."),
    ray: bool = typer.Option(False, "--ray", help="Run through Ray Data (map_batches over an actor pool)."),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help="Ray cluster address (auto, host:port), or 'local' to start a Ray instance here (its ports "
        "listen on every network interface).",
    ),
    actors: int = typer.Option(2, "--actors", min=1, help="Ray actors."),
    gpus_per_actor: float = typer.Option(0.0, "--gpus-per-actor", min=0.0, help="Ray GPUs per actor."),
    card: bool = typer.Option(True, "--card/--no-card", help="Write label_card.{json,md,png} afterwards."),
    compare: Path | None = typer.Option(
        None, "--compare", help="A second label folder: teacher agreement in the card."
    ),
    samples: list[Path] | None = typer.Option(
        None, "--samples", help="Label folders of repeated samples of the same teacher (Diff_Risk spread)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Label a recorded data set with a risk teacher: records, BEV risk maps, error records, label card.

    Sharded (--shard i/n), resumable (rerun the same command; finished frames are never recomputed) and
    parallel (--workers for the oracle, --ray for actor pools, GPU actors for VLMs).
    """
    from riskdistill.data.storage import DatasetError, RecordedDataset
    from riskdistill.teacher.rasterise import RasterConfig
    from riskdistill.teacher.runner import default_out_dir, parse_shard

    raster = RasterConfig() if boundary_risk is None else RasterConfig(boundary_risk=boundary_risk)
    _check_choices(teacher, backend, grounding, model, model_name, server_url)
    try:
        sh = parse_shard(shard)
    except ValueError as exc:
        fail(str(exc))
    g = _resolve_grid(grid)
    try:
        RecordedDataset(data)
    except DatasetError as exc:
        fail(str(exc))
    if ray and ray_address is None:
        fail(
            "--ray needs --ray-address: a running cluster (auto, host:port), or 'local' to start Ray on this "
            "machine knowing that Ray's servers listen on every network interface. On one machine, "
            "--workers N labels in parallel without opening any port."
        )
    base = _load_json(teacher_config, "--teacher-config") if teacher_config else {}
    vlm = (backend, model, model_name, server_url, cameras, prompt, grounding, detector_model)
    factory, fatal = _teacher_factory(teacher, base, *vlm)
    the_teacher = _build_teacher(teacher, factory)

    out_dir = out if out is not None else default_out_dir(data)
    console.print(
        f"labelling [bold]{data}[/] -> [bold]{out_dir}[/] with the {teacher} teacher, shard {shard}"
    )
    run = {
        "batch_size": batch_size,
        "limit": limit,
        "show_progress": progress,
        "fatal": fatal,
        "raster": raster,
    }
    if ray:
        from riskdistill.teacher.distributed import ray_executor

        local = ray_address == "local"
        init = {"num_cpus": max(actors, 1), "include_dashboard": False} if local else {}
        address = None if local else ray_address
        run["executor"] = ray_executor(factory, actors, 1.0, gpus_per_actor, address, init)
    else:
        run["workers"] = workers
    res = _run_labelling(data, out_dir, the_teacher, g, sh, run, fatal)
    _print_result(res, sh)
    if card:
        _write_card(res.out_dir, data, compare, samples)
    if res.n_errors:
        console.print(
            f"[yellow]{res.n_errors} frame(s) failed; see {res.out_dir / 'errors'} (rerun to retry)",
            highlight=False,
        )
        for line in _first_errors(res.out_dir, 3):
            console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)


def _check_choices(
    teacher: str,
    backend: str | None,
    grounding: str,
    model: Path | None,
    model_name: str | None,
    server_url: str | None,
) -> None:
    from riskdistill.teacher.build import TEACHERS

    if teacher not in TEACHERS:
        fail(f"unknown --teacher {teacher!r}; valid: {', '.join(TEACHERS.names())}")
    if backend is not None and backend not in ("local", "openai", "vllm"):
        fail(f"unknown --backend {backend!r}; valid: local, openai, vllm")
    if grounding not in GROUNDINGS:
        fail(f"unknown --grounding {grounding!r}; valid: {', '.join(GROUNDINGS)}")
    if teacher != "vlm" and (backend or model or model_name or server_url or grounding != "gt"):
        fail("--backend, --model, --model-name, --server-url and --grounding apply to --teacher vlm only")


def _resolve_grid(grid: str) -> Any:
    """A ``BevGrid`` from a preset name or a JSON file (``{"grid": {...}}`` or the grid's fields)."""
    from riskdistill.geometry import BEV_GRID_PRESETS, BevGrid

    if grid in BEV_GRID_PRESETS:
        return BevGrid.preset(grid)
    if Path(grid).is_file():
        d = _load_json(Path(grid), "grid")
        try:
            return BevGrid.from_dict(d.get("grid", d))
        except (KeyError, TypeError, ValueError) as exc:
            fail(f"{grid}: not a BevGrid ({exc})")
    fail(f"unknown --grid {grid!r}; presets: {sorted(BEV_GRID_PRESETS)}, or a JSON file")


def _teacher_factory(
    teacher: str,
    base: dict[str, Any],
    backend: str | None,
    model: Path | None,
    model_name: str | None,
    server_url: str | None,
    cameras: str | None,
    prompt: str | None,
    grounding: str,
    detector_model: Path | None,
) -> tuple[Any, tuple[type[BaseException], ...]]:
    """A picklable teacher factory (Ray actors rebuild the teacher from it) and the exception types that
    stop the run instead of becoming per-frame error records."""
    from riskdistill.teacher.build import TEACHERS

    if teacher != "vlm":
        return functools.partial(TEACHERS.get(teacher), base), ()
    try:
        from riskdistill.teacher.vlm import CameraConfigError
    except ImportError as exc:
        fail(f"the VLM teacher is not available in this installation ({exc})")
    cfg = vlm_config_dict(base, backend, model, model_name, server_url, cameras, prompt)
    det = None
    if grounding == "detector":
        if detector_model is None:
            fail("--grounding detector needs --detector-model DIR (an OWLv2 or Grounding DINO folder)")
        det = {"model_dir": str(detector_model)}
    return functools.partial(TEACHERS.get("vlm"), cfg, det), (CameraConfigError,)


def _build_teacher(teacher: str, factory: Any) -> Any:
    from riskdistill.config import ConfigError
    from riskdistill.teacher.runner import teacher_config_hash

    try:
        the_teacher = factory()
        teacher_config_hash(the_teacher)  # builds a VLM backend now: a missing model fails here, cleanly
    except (ConfigError, ValueError, OSError, ImportError) as exc:
        fail(f"cannot build the {teacher} teacher: {exc}")
    return the_teacher


def _run_labelling(
    data: Path,
    out_dir: Path,
    the_teacher: Any,
    grid: Any,
    shard: tuple[int, int],
    run: dict[str, Any],
    fatal: tuple[type[BaseException], ...],
) -> Any:
    from riskdistill.data.storage import DatasetError
    from riskdistill.teacher.runner import label_dataset

    try:
        return label_dataset(data, out_dir, the_teacher, grid, shard, **run)
    except fatal as exc:
        fail(f"configuration error, labelling stopped: {exc}")
    except DatasetError as exc:  # the data set itself (not one frame) cannot be read
        fail(f"labelling stopped: {exc}")
    except Exception as exc:
        if getattr(exc, "fatal", False):  # e.g. the VLM server stopped answering (a circuit breaker)
            fail(f"labelling stopped: {exc}")
        raise
    finally:
        close = getattr(the_teacher, "close", None)
        if callable(close):
            close()


def _print_result(res: Any, sh: tuple[int, int]) -> None:
    table = Table(title=f"labelling {res.out_dir} (shard {sh[0]}/{sh[1]})")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("frames in shard", str(res.frames_in_shard))
    table.add_row("labelled", str(res.labelled))
    table.add_row("re-rasterised", str(res.rasterised))
    table.add_row("already done", str(res.skipped))
    table.add_row("failed", ", ".join(f"{k} {v}" for k, v in res.errors.items()) or "0")
    table.add_row("frames/s", f"{res.frames_per_s:.1f}")
    console.print(table)


def _write_card(out_dir: Path, data: Path, compare: Path | None, samples: list[Path] | None) -> None:
    from riskdistill.teacher.card import CARD_MD, build_label_card

    c = build_label_card(out_dir, data_root=data, other_label_dir=compare, sample_dirs=samples or ())
    cov, temporal = c["coverage"], c["diff_risk"]["temporal"]["diff_risk"]
    console.print(
        f"label card: {out_dir / CARD_MD} (coverage {cov['frames_labelled']}/{cov['frames_total']}, "
        f"Diff_Risk temporal {'n/a' if temporal is None else f'{temporal:.3f}'})"
    )


def _first_errors(out_dir: Path, n: int) -> list[str]:
    """``frame: kind: message`` of the first ``n`` error records (sorted by frame id)."""
    import json

    lines = []
    for p in sorted((out_dir / "errors").rglob("*.json"))[:n]:
        try:
            e = json.loads(p.read_text(encoding="utf-8"))
            lines.append(f"{e.get('frame_id')}: {e.get('kind')}: {str(e.get('message'))[:300]}")
        except (OSError, ValueError, AttributeError):
            lines.append(f"{p}: unreadable error record")
    return lines
