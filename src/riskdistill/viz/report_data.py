"""What a report is built from: :class:`ReportInputs`, loaded from result folders and JSON files.

    inputs = ReportInputs.from_folders(
        closed_loop=["baseline=runs/cl_base_s0", "baseline=runs/cl_base_s1", "rsd:shifted=runs/cl_rsd_cam"],
        open_loop=["runs/ol_rsd.json"], compare="runs/compare.json",
        data="data/val", labels="data/val/labels/risk", checkpoints=["ckpt/rsd"],
    )

A closed-loop folder is what :func:`riskdistill.evaluation.closed_loop.evaluate_suite` writes
(``routes/<route_id>.json``; ``summary.json`` and ``results.json`` are optional here: the summary is
recomputed from the route files when missing). A spec ``LABEL[:CONDITION]=PATH`` names the run and its
condition (e.g. ``shifted``, ``cam_height``); a bare path takes its label from ``run.json``
(``config.label``) or the folder name without a trailing seed (``rsd_seed1`` -> ``rsd``) and its condition
from ``summary.json``'s evaluation ``variant`` (rig shift, scenario selection; see :func:`condition_of`),
else ``nominal``. Several runs with the same label and condition are seeds of one configuration: the
report shows their mean and 95 % confidence interval. ``risk_outcome.json`` (risk vs outcome) and the
route files' ``trajectory`` are used when present; layouts of routes come from the route file
(``layout``) or the suite named in ``run.json`` (``config.suite``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riskdistill.evaluation.driving_score import (
    RouteResult,
    compute_route_scores,
    compute_status,
    compute_summary,
    is_success,
)
from riskdistill.io import load_json
from riskdistill.sim.events import InfractionEvent, RouteEnd
from riskdistill.types import Infraction
from riskdistill.viz.report_names import display_name, split_seed

NOMINAL = "nominal"
_SEED_SUFFIX = re.compile(r"[_-]?(?:seed|s)\d+$")  # as riskdistill.evaluation.compare
_ROUTE_RESULT_FIELDS = {f.name for f in dataclasses.fields(RouteResult)}


class ReportInputError(ValueError):
    """An input of the report is missing or unreadable; the message names the file."""


@dataclass
class RouteOutcome:
    """One evaluated route as the report needs it: the scored result plus optional artefacts."""

    result: RouteResult
    scores: dict[str, float]  # score_route, score_penalty, score_composed
    status: str
    success: bool
    seed: int | None
    layout: dict[str, Any]  # layout overrides, when the route file records them
    trajectory_xy: list[list[float]] | None  # world-frame ego positions [T, 2], when recorded
    raw: dict[str, Any] = field(repr=False)

    @property
    def route_id(self) -> str:
        return self.result.route_id

    @property
    def scenario(self) -> str:
        return self.result.scenario_type


@dataclass
class ClosedLoopRun:
    """One closed-loop result folder."""

    label: str
    condition: str
    path: Path
    summary: dict[str, Any]
    routes: list[RouteOutcome]
    meta: dict[str, Any] = field(default_factory=dict)  # run.json, when present
    risk_outcome: dict[str, Any] | None = None  # risk_outcome.json, when the driver predicted risk

    @property
    def name(self) -> str:
        return self.label if self.condition == NOMINAL else f"{self.label} [{self.condition}]"

    @property
    def seed(self) -> int | None:
        """``run.json``'s ``config.seed``, else the folder name's seed suffix (``rsd_seed1``), else None."""
        config = self.meta.get("config") if isinstance(self.meta.get("config"), dict) else {}
        seed = config.get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool):
            return seed
        return split_seed(self.path.name)[1]

    @property
    def display(self) -> str:
        """The run's name in every section: ``label [condition] · seed N``."""
        return display_name(self.label, self.seed, self.condition)


@dataclass
class JsonInput:
    """An open-loop or comparison JSON file."""

    label: str
    path: Path
    data: Any


@dataclass
class ReportInputs:
    """Everything a report can show; every part is optional (sections without inputs are left out)."""

    closed_loop: list[ClosedLoopRun] = field(default_factory=list)
    open_loop: list[JsonInput] = field(default_factory=list)
    compare: JsonInput | None = None
    data: Path | None = None  # a recorded data set, for camera mosaics and BEV panels
    labels: Path | None = None  # the teacher's label folder (maps/<frame_id>.npy, records/<frame_id>.json)
    checkpoints: list[Path] = field(default_factory=list)  # student checkpoints for predicted risk maps
    training: list[TrainingRun] = field(default_factory=list)  # training runs: metrics.csv curves
    title: str = "riskdistill evaluation report"
    n_sample_frames: int = 3
    max_thumbnails: int = 24
    max_route_pages: int = 200  # route pages per closed-loop run (failures first)

    @classmethod
    def from_folders(
        cls,
        closed_loop: Sequence[str | Path] = (),
        open_loop: Sequence[str | Path] = (),
        compare: str | Path | None = None,
        data: str | Path | None = None,
        labels: str | Path | None = None,
        checkpoints: Sequence[str | Path] = (),
        training: Sequence[str | Path] = (),
        **kwargs: Any,
    ) -> ReportInputs:
        """Load every input (see the module doc for the ``LABEL[:CONDITION]=PATH`` specs; ``training`` are
        training run folders, ``LABEL=DIR`` or ``DIR``, with a ``metrics.csv``)."""
        runs = [load_closed_loop_run(spec) for spec in closed_loop]
        train_runs = [load_training_run(spec) for spec in training]
        ol = [load_json_input(spec) for spec in open_loop]
        cmp = load_json_input(compare) if compare is not None else None
        for p, what in ((data, "data set"), (labels, "label folder")):
            if p is not None and not Path(p).is_dir():
                raise ReportInputError(f"{p}: {what} not found")
        for c in checkpoints:
            cp = Path(c)
            if not (cp / "model.safetensors").is_file() or not (cp / "config.json").is_file():
                raise ReportInputError(
                    f"{cp}: not a student checkpoint (needs model.safetensors and config.json)"
                )
        return cls(
            closed_loop=runs,
            open_loop=ol,
            compare=cmp,
            data=Path(data) if data is not None else None,
            labels=Path(labels) if labels is not None else None,
            checkpoints=[Path(c) for c in checkpoints],
            training=train_runs,
            **kwargs,
        )


# ------------------------------------------------------------------------------------------ specs
def parse_spec(spec: str | Path) -> tuple[str | None, str | None, Path]:
    """``LABEL[:CONDITION]=PATH`` or ``PATH`` -> ``(label, condition, path)`` (None when not given)."""
    s = str(spec)
    if "=" in s and not Path(s).exists():
        head, path = s.split("=", 1)
        label, _, condition = head.partition(":")
        return label.strip() or None, condition.strip() or None, Path(path)
    return None, None, Path(s)


def default_label(path: Path) -> str:
    """The folder or file name without extension and trailing seed (``rsd_seed1`` -> ``rsd``)."""
    stem = path.stem if path.is_file() else path.name
    return _SEED_SUFFIX.sub("", stem) or stem


def _load(path: Path) -> Any:
    try:
        return load_json(path)
    except FileNotFoundError as exc:
        raise ReportInputError(f"{path}: not found") from exc
    except ValueError as exc:  # load_json names the file
        raise ReportInputError(str(exc)) from exc


def load_json_input(spec: str | Path) -> JsonInput:
    label, _, path = parse_spec(spec)
    if not path.is_file():
        raise ReportInputError(f"{path}: JSON file not found")
    return JsonInput(label=label or f"{path.parent.name}/{path.stem}", path=path, data=_load(path))


# ------------------------------------------------------------------------------------------ closed loop
def route_result_from_dict(d: dict[str, Any], where: str) -> RouteResult:
    """A :class:`RouteResult` from a ``routes/<id>.json`` dict; extra keys (artefacts) are ignored."""
    try:
        kw = {k: v for k, v in d.items() if k in _ROUTE_RESULT_FIELDS}
        kw["route_end"] = RouteEnd(kw["route_end"])
        kw["events"] = [InfractionEvent(**{**e, "kind": Infraction(e["kind"])}) for e in kw.get("events", [])]
        return RouteResult(**kw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportInputError(
            f"{where}: not a closed-loop route result ({type(exc).__name__}: {exc})"
        ) from exc


def _trajectory(d: dict[str, Any]) -> list[list[float]] | None:
    """World-frame ego positions from a route file, if it records them (several spellings accepted)."""
    for key in ("trajectory", "ego_trajectory", "log"):
        t = d.get(key)
        if isinstance(t, dict) and "x_m" in t and "y_m" in t:
            return [[float(x), float(y)] for x, y in zip(t["x_m"], t["y_m"], strict=False)]
        if isinstance(t, list) and t and isinstance(t[0], (list, tuple)) and len(t[0]) >= 2:
            return [[float(p[0]), float(p[1])] for p in t]
    if "x_m" in d and "y_m" in d and isinstance(d["x_m"], list):
        return [[float(x), float(y)] for x, y in zip(d["x_m"], d["y_m"], strict=False)]
    return None


def route_outcome(d: dict[str, Any], where: str) -> RouteOutcome:
    r = route_result_from_dict(d, where)
    spec = d.get("spec") if isinstance(d.get("spec"), dict) else {}
    layout = d.get("layout", spec.get("layout", {}))
    seed = d.get("seed", spec.get("seed", r.weather_id))
    return RouteOutcome(
        result=r,
        scores=compute_route_scores(r),
        status=compute_status(r),
        success=is_success(r),
        seed=int(seed) if isinstance(seed, (int, float)) else None,
        layout=dict(layout) if isinstance(layout, dict) else {},
        trajectory_xy=_trajectory(d),
        raw=d,
    )


def _run_meta(path: Path) -> dict[str, Any]:
    f = path / "run.json"
    if f.is_file():
        data = _load(f)
        return data if isinstance(data, dict) else {}
    return {}


def _fill_layouts(routes: list[RouteOutcome], suite_ref: Any, run_dir: Path) -> None:
    """Layout overrides of routes whose file lacks them, from the suite named in ``run.json``."""
    from riskdistill.sim.suites import load_suite

    ref = Path(str(suite_ref))
    if not ref.is_absolute() and not ref.exists() and (run_dir / ref).exists():
        ref = run_dir / ref
    try:
        suite = load_suite(ref if ref.exists() else str(suite_ref))
    except Exception:  # the suite moved or was renamed: thumbnails fall back to the shipped suites
        return
    specs = {r.route_id: r for r in suite.routes}
    for o in routes:
        spec = specs.get(o.route_id)
        if not o.layout and spec is not None and spec.scenario == o.scenario:
            o.layout = dict(spec.layout)
            if o.seed is None:
                o.seed = spec.seed


def load_closed_loop_run(spec: str | Path) -> ClosedLoopRun:
    """Load one closed-loop folder (``LABEL[:CONDITION]=PATH`` or ``PATH``)."""
    label, condition, path = parse_spec(spec)
    route_dir = path / "routes"
    if not route_dir.is_dir():
        raise ReportInputError(
            f"{path}: not a closed-loop result folder (no routes/ folder; "
            "write one with `riskdistill eval closed-loop --out DIR`)"
        )
    routes = [route_outcome(_load(f), str(f)) for f in sorted(route_dir.glob("*.json"))]
    if not routes:
        raise ReportInputError(f"{route_dir}: no route results (routes/<route_id>.json)")
    routes.sort(key=lambda o: (o.result.index, o.route_id))
    meta = _run_meta(path)
    summary_path = path / "summary.json"
    summary = _load(summary_path) if summary_path.is_file() else None
    if not isinstance(summary, dict):
        summary = compute_summary([o.result for o in routes], n_routes_in_suite=len(routes) or None)
    config = meta.get("config", {}) if isinstance(meta.get("config"), dict) else {}
    if config.get("suite") and any(not o.layout for o in routes):
        _fill_layouts(routes, config["suite"], path)
    if label is None:
        label = str(config.get("label") or default_label(path))
    if condition is None:
        condition = condition_of(summary.get("variant"), config)
    ro_path = path / "risk_outcome.json"
    risk_outcome = _load(ro_path) if ro_path.is_file() else None
    return ClosedLoopRun(
        label=label,
        condition=condition,
        path=path,
        summary=summary,
        routes=routes,
        meta=meta,
        risk_outcome=risk_outcome if isinstance(risk_outcome, dict) else None,
    )


def condition_of(variant: Any, config: dict[str, Any]) -> str:
    """The condition name of a run: its evaluation variant (``summary.json`` ``variant``: rig shift, scenario
    selection, JPEG quality), else ``run.json`` ``config.condition``, else ``nominal``."""
    parts: list[str] = []
    if isinstance(variant, dict):
        if variant.get("rig_shift"):
            parts.append(f"rig {variant['rig_shift']}")
        if variant.get("scenarios") not in (None, "all"):
            parts.append(str(variant["scenarios"]))
        if variant.get("jpeg_quality") is not None:
            parts.append(f"jpeg {variant['jpeg_quality']}")
    if not parts and isinstance(config.get("condition"), str) and config["condition"]:
        parts.append(config["condition"])
    return ", ".join(parts) if parts else NOMINAL


# ------------------------------------------------------------------------------------------ training runs
METRICS_CSV = "metrics.csv"


@dataclass
class TrainingRun:
    """One training run folder: its name parts and the rows of its ``metrics.csv``."""

    label: str
    seed: int | None
    path: Path
    rows: list[dict[str, Any]] = field(repr=False)

    @property
    def display(self) -> str:
        return display_name(self.label, self.seed)

    def series(self, split: str, key: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one column in one split (rows without it are skipped)."""
        pts = [(int(r["step"]), float(r[key])) for r in self.rows if r.get("split") == split and key in r]
        return [p[0] for p in pts], [p[1] for p in pts]

    def keys(self, split: str) -> list[str]:
        out: list[str] = []
        for r in self.rows:
            if r.get("split") == split:
                out += [k for k in r if k not in ("step", "epoch", "split") and k not in out]
        return out


def load_training_run(spec: str | Path) -> TrainingRun:
    """A training run folder (``LABEL=DIR`` or ``DIR``) with its ``metrics.csv``; ReportInputError naming the
    file when it is missing or unreadable."""
    from riskdistill.training.logger import read_metrics

    label, _, path = parse_spec(spec)
    csv_path = path / METRICS_CSV
    if not csv_path.is_file():
        raise ReportInputError(f"{csv_path}: not found (a training run folder holds metrics.csv)")
    try:
        rows = read_metrics(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ReportInputError(f"{csv_path}: unreadable ({type(exc).__name__}: {exc})") from exc
    config: dict[str, Any] = {}
    if (path / "run.json").is_file():
        try:
            meta = load_json(path / "run.json")
            config = meta.get("config", {}) if isinstance(meta, dict) else {}
        except ValueError:
            config = {}
    name_label, name_seed = split_seed(path.name)
    seed = name_seed if name_seed is not None else config.get("seed")
    if label is not None:
        label, spec_seed = split_seed(label)
        seed = spec_seed if spec_seed is not None else seed
    return TrainingRun(
        label=label or name_label,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        path=path,
        rows=rows,
    )
