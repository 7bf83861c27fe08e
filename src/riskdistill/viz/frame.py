"""One recorded frame as a picture: the six cameras beside a bird's-eye view of its annotation.

    img = render_frame("data/train", 12)          # [H, W, 3] uint8
    save_frame_png("data/train", 12, "frame.png")
    riskdistill viz frame data/train --index 12 --out frame.png

The BEV panel is drawn in the frame's own ego frame (x forward = up, y left = left), from the annotation
file only: lanes (filled between their edges), markings, crosswalks, stop lines, traffic lights, actors
by class, the ego box (cyan outline) and the expert's future trajectory (orange, valid waypoints only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from riskdistill.data.format import MARKING_KIND_CODES
from riskdistill.data.storage import RecordedDataset
from riskdistill.geometry import box_corners_2d
from riskdistill.types import ActorClass, LightState
from riskdistill.viz.cameras import render_camera_mosaic
from riskdistill.viz.topdown import (
    DRIVING_COLOR,
    EGO_HIGHLIGHT,
    FUTURE_COLOR,
    FUTURE_OUTLINE,
    GROUND_COLOR,
    JUNCTION_COLOR,
    LIGHT_COLORS,
    LIGHT_OUTLINE,
    PARKING_COLOR,
    STATIC_OBSTACLE_OUTLINE,
    STOP_LINE_COLOR,
    ZEBRA_COLOR,
    TopDownView,
    render_label,
    save_png,
)

RGB = tuple[int, int, int]
BEV_EXTENT_M = 60.0
BEV_AHEAD_FRACTION = 0.25  # the BEV centre lies this share of the extent ahead of the ego
MIN_PANEL_PX = 384
CLASS_COLORS: dict[ActorClass, RGB] = {
    ActorClass.CAR: (70, 130, 230),
    ActorClass.VAN: (90, 160, 210),
    ActorClass.TRUCK: (120, 90, 200),
    ActorClass.BUS: (160, 80, 190),
    ActorClass.PEDESTRIAN: (230, 60, 160),
    ActorClass.CYCLIST: (240, 90, 90),
    ActorClass.TRAFFIC_CONE: (250, 110, 0),
    ActorClass.BARRIER: (200, 170, 60),
    ActorClass.OPEN_DOOR: (150, 150, 150),
    ActorClass.EMERGENCY_VEHICLE: (250, 250, 90),
}
EGO_FILL: RGB = (20, 20, 24)
MARKING_COLORS_BY_CODE: dict[int, RGB] = {
    MARKING_KIND_CODES["solid_white"]: (225, 225, 225),
    MARKING_KIND_CODES["dashed_white"]: (190, 190, 190),
    MARKING_KIND_CODES["solid_yellow"]: (236, 192, 40),
}


def _flat(px: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(px).reshape(-1)]


def _valid(points: np.ndarray, n: int) -> np.ndarray:
    p = np.asarray(points[:n], dtype=np.float64)
    return p[np.all(np.isfinite(p), axis=1)]


def render_bev(
    ann: dict[str, np.ndarray], size_px: int = MIN_PANEL_PX, extent_m: float = BEV_EXTENT_M
) -> np.ndarray:
    """The BEV panel ``[size_px, size_px, 3]`` of one annotation dict (ego frame, ego heading up)."""
    view = TopDownView((BEV_AHEAD_FRACTION * extent_m, 0.0), 0.0, extent_m, size_px)
    img = Image.new("RGB", (size_px, size_px), GROUND_COLOR)
    draw = ImageDraw.Draw(img)
    k = view.px_per_m

    # lanes: driving surface between the two edges
    for i in range(len(ann["lane_id"])):
        n = int(ann["lane_n_points"][i])
        left = _valid(ann["lane_left_boundary"][i], n)
        right = _valid(ann["lane_right_boundary"][i], n)
        if len(left) < 2 or len(right) < 2:
            continue
        if bool(ann["lane_is_junction"][i]):
            color = JUNCTION_COLOR
        elif int(ann["lane_kind"][i]) == 1:
            color = PARKING_COLOR
        else:
            color = DRIVING_COLOR
        poly = view.world_to_px(np.concatenate([left, right[::-1]]))
        draw.polygon(_flat(poly), fill=color)
    for i in range(len(ann["crosswalk_id"])):
        poly = np.asarray(ann["crosswalk_polygon"][i], dtype=np.float64)
        if np.all(np.isfinite(poly)):
            draw.polygon(_flat(view.world_to_px(poly)), fill=ZEBRA_COLOR, outline=(120, 120, 120))
    for i in range(len(ann["marking_kind"])):
        pts = _valid(ann["marking_polyline"][i], int(ann["marking_n_points"][i]))
        if len(pts) >= 2:
            color = MARKING_COLORS_BY_CODE.get(int(ann["marking_kind"][i]), (225, 225, 225))
            draw.line(_flat(view.world_to_px(pts)), fill=color, width=max(1, round(0.15 * k)))
    for i in range(len(ann["stop_line_id"])):
        pts = np.asarray(ann["stop_line_points"][i], dtype=np.float64)
        if np.all(np.isfinite(pts)):
            draw.line(_flat(view.world_to_px(pts)), fill=STOP_LINE_COLOR, width=max(2, round(0.4 * k)))

    # actors by class
    n_act = len(ann["actor_id"])
    if n_act:
        centers = np.asarray(ann["actor_center_ego"], dtype=np.float64)[:, :2]
        size = np.asarray(ann["actor_size_lwh"], dtype=np.float64)
        yaw = np.asarray(ann["actor_yaw_ego"], dtype=np.float64)
        corners = view.world_to_px(box_corners_2d(centers, yaw, size[:, 0], size[:, 1]))
        for i in range(n_act):
            cls = ActorClass(int(ann["actor_class"][i]))
            fill = CLASS_COLORS.get(cls, (200, 200, 200))
            if cls == ActorClass.PEDESTRIAN:
                u, v = view.world_to_px(centers[i])
                r = max(2.0, 0.5 * max(size[i, 0], size[i, 1], 0.7) * k)
                draw.ellipse((u - r, v - r, u + r, v + r), fill=fill, outline=(0, 0, 0))
                continue
            outline = STATIC_OBSTACLE_OUTLINE if cls.is_static_obstacle else (0, 0, 0)
            draw.polygon(_flat(corners[i]), fill=fill, outline=outline)

    # traffic lights
    r = max(3.0, 0.9 * k)
    for i in range(len(ann["light_id"])):
        u, v = view.world_to_px(np.asarray(ann["light_position_ego"][i][:2], dtype=np.float64))
        state = LightState(int(ann["light_state"][i])) if int(ann["light_state"][i]) in (0, 1, 2, 3) else None
        fill = LIGHT_COLORS.get(state, (110, 110, 110)) if state is not None else (110, 110, 110)
        draw.ellipse((u - r, v - r, u + r, v + r), fill=fill, outline=LIGHT_OUTLINE)

    # ego box
    ec = np.asarray(ann["ego_center_ego"], dtype=np.float64)
    es = np.asarray(ann["ego_size_lwh"], dtype=np.float64)
    ego_px = view.world_to_px(box_corners_2d(ec[None, :2], np.zeros(1), es[None, 0], es[None, 1]))[0]
    draw.polygon(_flat(ego_px), fill=EGO_FILL, outline=EGO_HIGHLIGHT, width=max(2, round(0.25 * k)))

    # future trajectory (from the rear axle through the valid waypoints)
    valid = np.asarray(ann["future_valid"], dtype=bool)
    fut = np.asarray(ann["future_xy"], dtype=np.float64)[valid]
    if len(fut):
        pts = view.world_to_px(np.concatenate([np.zeros((1, 2)), fut]))
        draw.line(_flat(pts), fill=FUTURE_COLOR, width=max(2, round(0.35 * k)))
        rr = max(2.5, 0.5 * k)
        for u, v in pts[1:]:
            draw.ellipse((u - rr, v - rr, u + rr, v + rr), fill=FUTURE_COLOR, outline=FUTURE_OUTLINE)
    return np.asarray(img)


def _load(dataset_dir: str | Path, index: int) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
    ds = RecordedDataset(dataset_dir)
    n = len(ds)
    if not 0 <= index < n:
        raise IndexError(
            f"{ds.root}: frame index {index} out of range (the data set has {n} frames: 0..{n - 1})"
        )
    rec = ds.frame(index)
    return rec, rec.annotation, rec.images


def render_frame(dataset_dir: str | Path, index: int) -> np.ndarray:
    """Frame ``index`` of a recorded data set as ``[H, W, 3]`` uint8: camera mosaic (left), BEV (right).

    The BEV panel is square, as tall as the mosaic (at least :data:`MIN_PANEL_PX`; the mosaic is scaled to
    that height). Raises IndexError for an index out of range and DatasetError for an unreadable folder.
    """
    rec, ann, images = _load(dataset_dir, index)
    mosaic = render_camera_mosaic(images, rec.camera_names)
    side = max(MIN_PANEL_PX, mosaic.shape[0])
    if mosaic.shape[0] != side:
        w = round(mosaic.shape[1] * side / mosaic.shape[0])
        mosaic = np.asarray(Image.fromarray(mosaic).resize((w, side), Image.BILINEAR))
    bev = render_bev(ann, side)
    out = Image.fromarray(np.concatenate([mosaic, bev], axis=1))
    speed = rec.ego.speed_mps
    render_label(
        ImageDraw.Draw(out),
        f"{rec.frame_id}  {rec.scenario}  cmd {rec.command.name}  {speed:.1f} m/s"
        f"  actors {len(ann['actor_id'])}",
    )
    return np.asarray(out)


def bev_panel_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the BEV panel inside a :func:`render_frame` image (the right square)."""
    h, w = image.shape[:2]
    return w - h, 0, w, h


def save_frame_png(dataset_dir: str | Path, index: int, out: str | Path) -> Path:
    """Render frame ``index`` and write it as a PNG (atomically); returns ``out``."""
    img = render_frame(dataset_dir, index)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(img, out)
    return out
