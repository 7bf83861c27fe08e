"""Object recall of the occupancy head (``eval open-loop``'s ``occupancy_recall_by_range`` and
``occupancy_recall_on_road``; definitions in ``docs/metrics.md``): for every vehicle, vulnerable road user and
static obstacle a camera shows, whether the head marks it, counted per distance bin and split by whether the
object stands on the drivable area. Object-level, so a pedestrian counts as much as a bus (cell IoU, in
:mod:`riskdistill.evaluation.open_loop`, is dominated by large objects)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

OCCUPANCY_THRESHOLD = 0.5  # a predicted cell is occupied when sigmoid(logit) > this
#: Distance bins (m from the ego origin, the rear axle) of the occupancy head's object recall.
RECALL_RANGES_M = (0.0, 10.0, 20.0, 30.0, 50.0)
#: The actor channels of BEV occupancy (the first three of ``contracts.batch.BEV_CHANNELS``, which imports
#: torch; a test checks they agree) and the annotation arrays recall reads.
ACTOR_CHANNELS = ("vehicle", "vulnerable", "static_obstacle")
RECALL_KEYS = ("actor_class", "actor_center_ego", "actor_size_lwh", "actor_yaw_ego", "actor_visible_px")


def object_recall_hits(
    pred_logits: Any,
    ann: dict[str, np.ndarray],
    grid: Any,
    threshold: float = OCCUPANCY_THRESHOLD,
    visible_in: Sequence[int] | None = None,
    drivable: Any = None,
) -> list[tuple[int, float, bool, bool | None]]:
    """``(channel, distance m, seen, on road)`` for every vehicle, vulnerable road user and static obstacle
    of one frame whose footprint is on the grid and that at least one camera shows (``actor_visible_px`` of
    the recording's instance masks; a fully hidden object is not counted). ``visible_in``: the cameras
    (column indices of ``actor_visible_px``, the recording's camera order) that count for "shows"; None: all.
    Seen: the occupancy head predicts its channel above ``threshold`` on at least one cell of its
    footprint. On road: ``drivable`` (``[H, W]`` bool, the frame's drivable-area target) holds the cell of
    the object's centre (a pedestrian crossing the carriageway, not one on the pavement); None without
    ``drivable``. ``pred_logits`` ``[C, H, W]`` (channels ``BEV_CHANNELS``), ``ann`` the frame's
    :data:`RECALL_KEYS` arrays. Object-level, so a pedestrian of one or two cells counts as much as a bus
    (cell IoU is dominated by large objects)."""
    from riskdistill.data.targets import OCCUPANCY_CHANNEL_OF_CLASS, box_footprint_mask

    cls = np.asarray(ann["actor_class"])
    if not len(cls):
        return []
    centre = np.asarray(ann["actor_center_ego"], dtype=np.float64)
    masks = box_footprint_mask(
        grid, centre[:, :2], np.asarray(ann["actor_size_lwh"], dtype=np.float64)[:, :2], ann["actor_yaw_ego"]
    )
    seen = np.asarray(pred_logits, dtype=np.float64) > math.log(threshold / (1.0 - threshold))
    visible_px = np.asarray(ann["actor_visible_px"]).reshape(len(cls), -1)
    if visible_in is not None:
        visible_px = visible_px[:, list(visible_in)]
    shown = visible_px.sum(axis=1) > 0
    on_road: list[bool | None] = [None] * len(cls)
    if drivable is not None:
        road = np.asarray(drivable, dtype=bool)
        inside = grid.contains(centre[:, :2])
        rc = grid.metric_to_cell(centre[:, :2])
        on_road = [bool(road[r, c]) if ok else False for (r, c), ok in zip(rc, inside, strict=True)]
    out = []
    for a, c in enumerate(cls):
        g = OCCUPANCY_CHANNEL_OF_CLASS.get(int(c), -1)
        if g < 0 or not shown[a] or not masks[a].any():
            continue
        out.append((g, float(np.hypot(*centre[a, :2])), bool(seen[g][masks[a]].any()), on_road[a]))
    return out


def _recall(seen: Sequence[bool]) -> dict[str, Any]:
    return {"objects": len(seen), "recall": (sum(seen) / len(seen)) if seen else None}


def _by_range(pairs: Sequence[tuple[float, bool]]) -> dict[str, dict[str, Any]]:
    """``(distance m, seen)`` pairs -> ``{"0-10": {"objects", "recall"}, ...}`` over :data:`RECALL_RANGES_M`
    (objects beyond the last edge in the last bin)."""
    edges, bins = RECALL_RANGES_M, {}
    for i, lo in enumerate(edges[:-1]):
        last = i == len(edges) - 2
        hi = edges[i + 1]
        sel = [seen for d, seen in pairs if lo <= d and (d < hi or last)]
        bins[f"{lo:g}-{hi:g}" if not last else f"{lo:g}+"] = _recall(sel)
    return bins


def recall_on_road(hits: Sequence[tuple[Any, ...]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{channel: {"on_road": {"objects": n, "recall": ..., "by_range": {...}}, "off_road": {...}}}`` over
    the hits whose on-road flag is known (:func:`object_recall_hits` with ``drivable``): e.g. pedestrians
    crossing the carriageway, the hazards, apart from those on the pavement, also per distance bin (on-road
    and off-road objects lie at different distances)."""
    known = [h for h in hits if len(h) > 3 and h[3] is not None]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for g, name in enumerate(ACTOR_CHANNELS):
        out[name] = {}
        for where, road in (("on_road", True), ("off_road", False)):
            pairs = [(h[1], h[2]) for h in known if h[0] == g and h[3] is road]
            out[name][where] = {**_recall([seen for _, seen in pairs]), "by_range": _by_range(pairs)}
    return out


def recall_by_range(hits: Sequence[tuple[Any, ...]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{channel: {"0-10": {"objects": n, "recall": seen / n or None}, ...}}`` over :data:`RECALL_RANGES_M`
    (objects beyond the last edge in the last bin)."""
    return {
        name: _by_range([(h[1], h[2]) for h in hits if h[0] == g]) for g, name in enumerate(ACTOR_CHANNELS)
    }
