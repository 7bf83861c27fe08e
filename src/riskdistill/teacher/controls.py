"""Control teachers: labels that carry no risk judgement, for the study's controls.

A control run trains the same RiskHead as RSD on maps written by one of these teachers, through the same
label runner and the same training path (training reads label folders; it never rasterises). A gain of
RSD over a control is then a gain of the teacher's judgement, not of extra supervision.

- ``footprint``: every actor's oriented footprint at one constant ``score``, no motion spread, no ranking:
  "where the objects are" without "which of them matter".
- ``corridor``: the expert's own future path (annotation ``future_xy`` / ``future_valid`` / ``future_yaw``)
  painted as a corridor swept by the ego body, scaled to the statistics of the study's teacher maps
  (:func:`calibrate_corridor`). The RSD target also carries plan-like information (the teacher's risk sits
  on and around the expert's path); this control gives the RiskHead that plan information and nothing
  else, so RSD vs corridor separates "plan supervision through the RiskHead" from "risk semantics".

What the corridor matches (:func:`compute_label_stats` on the teacher's label folder, computed once; the
pipeline writes both statistics to ``<control labels>/label_stats.json``):

1. the **mean hot area**: the mean over frames of the share of cells whose value is above
   ``HOT_THRESHOLD`` (0: any non-zero cell), by choosing the corridor width (one width for every frame,
   found by bisection over the frames of the data set); and
2. the **value histogram of the hot cells**: inside a frame's corridor the cells, ordered by arc length
   along the path (nearest first), take the teacher's pooled hot-cell value quantiles from the highest
   down, so each corridor map's non-zero values follow the teacher's distribution.

Not matched: the share of empty maps (a corridor is never empty; the teacher's map is empty when nothing
is risky), where the hot cells are (that is the point), and the spatial smoothness of the teacher's maps.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

import riskdistill
from riskdistill.config import StrictConfig
from riskdistill.contracts import labels
from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_M
from riskdistill.data.storage import FrameRecord, RecordedDataset, annotation_fields
from riskdistill.geometry import BevGrid
from riskdistill.teacher.schema import FrameLabel, ObjectRisk, Provenance
from riskdistill.types import ActorClass

#: A cell is "hot" when its value is above this (0: any non-zero cell of the float16 map).
HOT_THRESHOLD = 0.0
#: Quantiles of the hot-cell values kept as the value histogram (0, 1/(N-1), ..., 1).
N_QUANTILES = 101


class FootprintConfig(StrictConfig):
    score: float = Field(default=0.5, gt=0.0, le=1.0)

    def config_hash(self) -> str:
        blob = json.dumps({"teacher": "footprint", **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class FootprintTeacher:
    """Every actor of the frame at ``config.score``; painted as its footprint only (``raster_overrides``:
    no spread along the motion)."""

    kind: ClassVar[str] = "footprint"
    raster_overrides: ClassVar[dict[str, Any]] = {"horizon_s": 0.0}

    def __init__(self, config: FootprintConfig | None = None):
        self.config = config or FootprintConfig()
        self._provenance = Provenance(
            teacher="control",
            model_id="riskdistill.teacher.controls.footprint",
            package_version=riskdistill.__version__,
            config_hash=self.config.config_hash(),
            created_utc="",
        )

    def label(self, frame: FrameRecord) -> FrameLabel:
        a = annotation_fields(frame, ("actor_id", "actor_class"), "footprint control teacher")
        ids = np.asarray(a["actor_id"], dtype=np.int64).reshape(-1)
        cls = np.asarray(a["actor_class"], dtype=np.int64).reshape(-1)
        known = {int(c) for c in ActorClass}
        objects = [
            ObjectRisk(
                object_id=int(i),
                cls=ActorClass(int(c)).name.lower() if int(c) in known else "unknown",
                risk=self.config.score,
                rank=k + 1,
                reason="control: footprint at a constant score",
            )
            for k, (i, c) in enumerate(sorted(zip(ids.tolist(), cls.tolist(), strict=True)))
        ]
        return FrameLabel(
            frame_id=frame.frame_id,
            objects=objects,
            frame_risk=self.config.score if objects else 0.0,
            summary="control labels: every object at one score",
            provenance=self._provenance,
        )


# ------------------------------------------------------------------------------------------ statistics
def compute_label_stats(
    label_dir: str | Path,
    frame_ids: Iterable[str] | None = None,
    threshold: float = HOT_THRESHOLD,
    n_quantiles: int = N_QUANTILES,
) -> dict[str, Any]:
    """Statistics of the maps of a label folder (every ``maps/**/*.npy``, or those of ``frame_ids``):

    ``n_maps``; ``hot_fraction_mean`` (mean over maps of the share of cells ``> threshold``);
    ``empty_fraction`` (maps without a hot cell); ``mean_value`` (mean cell value over all cells of all
    maps); ``hot_value_mean`` and ``value_quantiles`` (``n_quantiles`` evenly spaced quantiles, 0 to 1, of
    the pooled hot-cell values: the value histogram)."""
    label_dir = Path(label_dir)
    maps_dir = label_dir / labels.MAPS
    if frame_ids is None:
        paths = sorted(maps_dir.rglob("*.npy"))
    else:
        paths = [labels.risk_map_path(label_dir, f) for f in frame_ids]
    if not paths:
        raise ValueError(f"{maps_dir}: no risk maps to compute statistics of")
    hot_fracs, sums, cells = [], 0.0, 0
    hot_values: list[np.ndarray] = []
    for p in paths:
        try:
            m = np.load(p, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{p}: unreadable risk map ({exc})") from exc
        hot = m > threshold
        hot_fracs.append(float(hot.mean()))
        sums += float(m.sum())
        cells += m.size
        hot_values.append(m[hot])
    values = np.concatenate(hot_values) if hot_values else np.zeros(0, np.float32)
    q = np.linspace(0.0, 1.0, n_quantiles)
    return {
        "n_maps": len(paths),
        "threshold": threshold,
        "hot_fraction_mean": float(np.mean(hot_fracs)),
        "empty_fraction": float(np.mean([f == 0.0 for f in hot_fracs])),
        "mean_value": sums / max(cells, 1),
        "hot_value_mean": float(values.mean()) if values.size else 0.0,
        "value_quantiles": np.quantile(values, q).astype(float).tolist() if values.size else [],
    }


# ------------------------------------------------------------------------------------------ corridor
#: The ego body ahead of / behind the rear axle (the ego frame's origin), metres.
EGO_FRONT_M = EGO_REAR_AXLE_TO_CENTER_M + EGO_SIZE_M[0] / 2.0
EGO_REAR_M = EGO_SIZE_M[0] / 2.0 - EGO_REAR_AXLE_TO_CENTER_M


class CorridorConfig(StrictConfig):
    """The corridor control. ``width_m``: the corridor's full width (default: the ego's width; the study
    calibrates it, :func:`calibrate_corridor`); ``value_quantiles``: the value histogram (quantile function,
    ascending) the corridor's cells take, nearest cell highest; ``matched``: the statistics it was scaled
    to (provenance only)."""

    width_m: float = Field(default=EGO_SIZE_M[1], gt=0.0, le=200.0)
    value_quantiles: list[float] = Field(default_factory=lambda: [0.5, 0.5], min_length=2)
    matched: dict[str, Any] = Field(default_factory=dict)

    @field_validator("value_quantiles")
    @classmethod
    def _quantiles(cls, v: list[float]) -> list[float]:
        a = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(a)) or a.min() <= 0.0 or a.max() > 1.0 or np.any(np.diff(a) < 0):
            raise ValueError(f"value_quantiles must be ascending values in (0, 1], got {v}")
        return [float(x) for x in a]

    def config_hash(self) -> str:
        blob = json.dumps({"teacher": "corridor", **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def swept_path(future_xy: Any, future_valid: Any, future_yaw: Any) -> np.ndarray:
    """``[K, 2]`` the polyline the ego body sweeps: its rear end now (``EGO_REAR_M`` behind the rear axle),
    the rear axle now (the origin), the valid future rear-axle positions, and the nose at the last one
    (``EGO_FRONT_M`` ahead along its heading)."""
    xy = np.asarray(future_xy, dtype=np.float64).reshape(-1, 2)
    valid = np.asarray(future_valid, dtype=bool).reshape(-1)
    yaw = np.asarray(future_yaw, dtype=np.float64).reshape(-1)
    pts = xy[valid & np.isfinite(xy).all(axis=1)]
    last_yaw = 0.0
    if len(pts) and valid.any():
        y = yaw[np.flatnonzero(valid)[-1]] if len(yaw) == len(valid) else 0.0
        last_yaw = float(y) if math.isfinite(y) else 0.0
    last = pts[-1] if len(pts) else np.zeros(2)
    nose = last + EGO_FRONT_M * np.array([math.cos(last_yaw), math.sin(last_yaw)])
    return np.vstack([[-EGO_REAR_M, 0.0], [0.0, 0.0], pts, nose])


def path_distance(polyline: np.ndarray, grid: BevGrid) -> tuple[np.ndarray, np.ndarray]:
    """``(distance [H, W], arc_length [H, W])``: each cell centre's distance (m) to the polyline and the
    arc length (m, from its start) of the nearest point on it."""
    c = grid.cell_centers().reshape(-1, 2)  # [N, 2]
    best = np.full(len(c), np.inf)
    arc = np.zeros(len(c))
    s0 = 0.0
    for a, b in itertools.pairwise(polyline):
        ab = b - a
        seg = float(np.hypot(*ab))
        t = np.zeros(len(c)) if seg < 1e-9 else np.clip(((c - a) @ ab) / (seg * seg), 0.0, 1.0)
        d = np.hypot(*(a + t[:, None] * ab - c).T)
        closer = d < best
        best[closer] = d[closer]
        arc[closer] = s0 + t[closer] * seg
        s0 += seg
    return best.reshape(grid.shape), arc.reshape(grid.shape)


def paint_corridor(
    distance: np.ndarray, arc_length: np.ndarray, width_m: float, value_quantiles: Sequence[float]
) -> np.ndarray:
    """``[H, W]`` float32: the cells within ``width_m / 2`` of the path, valued by rank along the path
    (nearest first, ties by distance to the path) from the top of ``value_quantiles`` down; 0 elsewhere."""
    inside = distance <= width_m / 2.0
    out = np.zeros(distance.shape, dtype=np.float32)
    n = int(inside.sum())
    if n == 0:
        return out
    idx = np.flatnonzero(inside)
    order = idx[np.lexsort((distance.flat[idx], arc_length.flat[idx]))]
    q = np.asarray(value_quantiles, dtype=np.float64)
    u = 1.0 - (np.arange(n) + 0.5) / n  # nearest cell: the top quantile
    out.flat[order] = np.interp(u, np.linspace(0.0, 1.0, len(q)), q)
    return out


class CorridorTeacher:
    """The expert's future path as a corridor (see the module docstring). It paints its own map
    (:meth:`paint`, which the labelling runner uses instead of rasterising objects); its label lists no
    object."""

    kind: ClassVar[str] = "corridor"
    fields: ClassVar[tuple[str, ...]] = ("future_xy", "future_valid", "future_yaw")

    def __init__(self, config: CorridorConfig | None = None):
        self.config = config or CorridorConfig()
        self._provenance = Provenance(
            teacher="control",
            model_id="riskdistill.teacher.controls.corridor",
            package_version=riskdistill.__version__,
            config_hash=self.config.config_hash(),
            created_utc="",
        )

    def distance(self, frame: FrameRecord, grid: BevGrid) -> tuple[np.ndarray, np.ndarray]:
        a = annotation_fields(frame, self.fields, "corridor control teacher")
        return path_distance(swept_path(a["future_xy"], a["future_valid"], a["future_yaw"]), grid)

    def paint(self, frame: FrameRecord, grid: BevGrid) -> np.ndarray:
        """The frame's corridor map ``[H, W]`` on ``grid``."""
        d, s = self.distance(frame, grid)
        return paint_corridor(d, s, self.config.width_m, self.config.value_quantiles)

    def label(self, frame: FrameRecord) -> FrameLabel:
        annotation_fields(frame, self.fields, "corridor control teacher")  # a bad frame fails here
        return FrameLabel(
            frame_id=frame.frame_id,
            objects=[],
            frame_risk=0.0,  # no object is scored: the map is painted (the schema ties the two)
            summary="control labels: the expert's future path as a corridor",
            provenance=self._provenance,
        )


def calibrate_corridor(
    data_root: str | Path,
    teacher_label_dir: str | Path,
    grid: BevGrid,
    max_frames: int = 400,
    threshold: float = HOT_THRESHOLD,
) -> tuple[CorridorConfig, dict[str, Any]]:
    """The corridor matched to the teacher's maps of the data set at ``data_root``: ``value_quantiles``
    from :func:`compute_label_stats` of ``teacher_label_dir``, ``width_m`` by bisection so that the mean hot
    area over (up to ``max_frames``, spread over the data set) frames equals the teacher's. Returns the
    config and ``{"teacher": stats, "corridor_hot_fraction_mean": ..., "frames": n, "width_m": ...}``."""
    ds = RecordedDataset(data_root)
    ids = ds.table.column("frame_id").to_pylist()
    stats = compute_label_stats(teacher_label_dir, None, threshold)
    if not stats["value_quantiles"]:
        raise ValueError(f"{teacher_label_dir}: every teacher map is empty; there is nothing to match")
    step = max(1, len(ids) // max(max_frames, 1))
    teacher = CorridorTeacher()
    dists = [teacher.distance(ds[i], grid)[0] for i in range(0, len(ids), step)][:max_frames]
    sorted_d = np.sort(np.stack([d.reshape(-1) for d in dists]), axis=1)  # [F, H*W]
    n_cells = sorted_d.shape[1]

    def hot_fraction(width_m: float) -> float:
        counts = [np.searchsorted(row, width_m / 2.0, side="right") for row in sorted_d]
        return float(np.mean(counts)) / n_cells

    target = stats["hot_fraction_mean"]
    lo, hi = 0.01, 2.0 * float(np.hypot(*grid.shape)) * grid.resolution_m
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if hot_fraction(mid) < target else (lo, mid)
    width = hi if abs(hot_fraction(hi) - target) <= abs(hot_fraction(lo) - target) else lo
    q = [max(v, 1e-3) for v in stats["value_quantiles"]]  # a hot cell stays hot (float16 keeps 1e-3)
    matched = {
        "teacher_label_dir": str(teacher_label_dir),
        "hot_fraction_mean": target,
        "threshold": threshold,
        "frames": len(dists),
    }
    cfg = CorridorConfig(width_m=min(width, 200.0), value_quantiles=q, matched=matched)
    report = {"teacher": stats, "width_m": cfg.width_m, "corridor_hot_fraction_mean": hot_fraction(width)}
    return cfg, {**report, "frames": len(dists)}
