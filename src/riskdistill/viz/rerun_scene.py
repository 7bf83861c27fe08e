"""The scene of a Rerun recording: actors as boxes in the BEV panel and in a 3-D view, and the default
blueprint that lays the recording out (cameras, the teacher's and the student's BEV risk side by side, 3-D,
top-down, time series, logs), so a user opens a ``.rrd`` and sees the route without arranging views.

Entities (under the recording's ``sim_time`` timeline):

================================ ==========================================================================
``bev/actors``                    every actor's oriented box (closed polygons, BEV panel pixels, by class)
``bev/ego``                       the ego's box (static)
``scene``                         3-D, ego frame (x forward, y left, z up, metres; static view coordinates)
``scene/actors``                  every actor as a 3-D box (centre, size, yaw), labelled with its class
``scene/ego``                     the ego's box (static)
``scene/trajectory/<name>``       planned / expert / route trajectories on the ground
================================ ==========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_M
from riskdistill.geometry import BevGrid, box_corners_2d
from riskdistill.types import ActorClass
from riskdistill.viz.risk import ego_to_px

EGO_COLOR = (0, 235, 255)
CLASS_COLORS: dict[int, tuple[int, int, int]] = {
    int(ActorClass.CAR): (70, 130, 230),
    int(ActorClass.VAN): (90, 110, 210),
    int(ActorClass.TRUCK): (60, 80, 180),
    int(ActorClass.BUS): (60, 60, 160),
    int(ActorClass.EMERGENCY_VEHICLE): (230, 60, 60),
    int(ActorClass.CYCLIST): (240, 160, 30),
    int(ActorClass.PEDESTRIAN): (255, 120, 0),
    int(ActorClass.TRAFFIC_CONE): (250, 110, 40),
    int(ActorClass.BARRIER): (160, 160, 160),
    int(ActorClass.OPEN_DOOR): (140, 140, 140),
}
OTHER_COLOR = (200, 200, 200)


@dataclass
class ActorBoxes:
    """Oriented boxes in the ego frame (x forward, y left; ``centers_ego`` z = the box centre height)."""

    centers_ego: np.ndarray  # [A, 3]
    sizes_lwh: np.ndarray  # [A, 3]
    yaws_ego: np.ndarray  # [A] relative to the ego
    classes: np.ndarray  # [A] ActorClass values
    ids: np.ndarray  # [A]

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def colors(self) -> list[tuple[int, int, int]]:
        return [CLASS_COLORS.get(int(c), OTHER_COLOR) for c in self.classes]

    @property
    def labels(self) -> list[str]:
        out = []
        for c, i in zip(self.classes, self.ids, strict=True):
            try:
                name = ActorClass(int(c)).name.lower()
            except ValueError:
                name = f"class {int(c)}"
            out.append(f"{name} #{int(i)}")
        return out


def boxes_from_annotation(ann: dict[str, Any]) -> ActorBoxes:
    """The actors of a recorded frame's annotation (already in its ego frame)."""
    n = len(ann["actor_id"])
    return ActorBoxes(
        centers_ego=np.asarray(ann["actor_center_ego"], dtype=np.float64).reshape(n, 3),
        sizes_lwh=np.asarray(ann["actor_size_lwh"], dtype=np.float64).reshape(n, 3),
        yaws_ego=np.asarray(ann["actor_yaw_ego"], dtype=np.float64).reshape(n),
        classes=np.asarray(ann["actor_class"], dtype=np.int64).reshape(n),
        ids=np.asarray(ann["actor_id"], dtype=np.int64).reshape(n),
    )


def boxes_from_world(world: Any) -> ActorBoxes:
    """The simulator's actors (all but the ego, actor 0) in the ego's frame (rear axle, ``world.ego``)."""
    a, e = world.actors, world.ego
    idx = np.arange(1, a.n)
    c, s = math.cos(e.yaw_rad), math.sin(e.yaw_rad)
    dx, dy = a.x[idx] - e.x_m, a.y[idx] - e.y_m
    h = np.asarray(a.height[idx], dtype=np.float64)
    yaw = np.angle(np.exp(1j * (np.asarray(a.yaw[idx], dtype=np.float64) - e.yaw_rad)))
    return ActorBoxes(
        centers_ego=np.stack([c * dx + s * dy, -s * dx + c * dy, 0.5 * h], axis=1).reshape(-1, 3),
        sizes_lwh=np.stack([a.length[idx], a.width[idx], h], axis=1).astype(np.float64).reshape(-1, 3),
        yaws_ego=yaw.reshape(-1),
        classes=np.asarray(a.cls[idx], dtype=np.int64),
        ids=np.asarray(a.id[idx], dtype=np.int64),
    )


def _quaternions(yaws: np.ndarray) -> np.ndarray:
    """Rotations about z as ``[N, 4]`` quaternions ``(x, y, z, w)``."""
    h = 0.5 * np.asarray(yaws, dtype=np.float64)
    return np.stack([np.zeros_like(h), np.zeros_like(h), np.sin(h), np.cos(h)], axis=1).astype(np.float32)


def _polygons_px(grid: BevGrid, size: tuple[int, int], centers: np.ndarray, yaws: np.ndarray, lw: np.ndarray):
    corners = box_corners_2d(centers[:, :2], yaws, lw[:, 0], lw[:, 1])  # [A, 4, 2]
    closed = np.concatenate([corners, corners[:, :1]], axis=1)  # [A, 5, 2]
    return [ego_to_px(grid, poly, size).astype(np.float32) for poly in closed]


def log_scene_static(rec: Any, grid: BevGrid | None, size: tuple[int, int]) -> None:
    """The 3-D view's coordinates and the ego's box in 3-D (and on the BEV panel when there is a grid)."""
    import rerun as rr

    length, width, height = EGO_SIZE_M
    rec.log("scene", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    center = np.array([[EGO_REAR_AXLE_TO_CENTER_M, 0.0, 0.5 * height]], dtype=np.float32)
    half = np.array([[0.5 * length, 0.5 * width, 0.5 * height]], dtype=np.float32)
    rec.log(
        "scene/ego",
        rr.Boxes3D(centers=center, half_sizes=half, colors=[EGO_COLOR], labels=["ego"]),
        static=True,
    )
    if grid is not None:
        poly = _polygons_px(grid, size, center.astype(np.float64), np.zeros(1), np.array([[length, width]]))
        rec.log("bev/ego", rr.LineStrips2D(poly, colors=[EGO_COLOR], radii=1.5, draw_order=6.0), static=True)


def log_actor_boxes(rec: Any, boxes: ActorBoxes, grid: BevGrid | None, size: tuple[int, int]) -> None:
    """``scene/actors`` (3-D boxes) and, with a grid, ``bev/actors`` (box outlines on the BEV panel)."""
    import rerun as rr

    if len(boxes) == 0:
        rec.log("scene/actors", rr.Clear(recursive=False))
        if grid is not None:
            rec.log("bev/actors", rr.Clear(recursive=False))
        return
    colors, labels = boxes.colors, boxes.labels
    rec.log(
        "scene/actors",
        rr.Boxes3D(
            centers=boxes.centers_ego.astype(np.float32),
            half_sizes=(0.5 * boxes.sizes_lwh).astype(np.float32),
            quaternions=_quaternions(boxes.yaws_ego),
            colors=colors,
            labels=labels,
            show_labels=False,
        ),
    )
    if grid is not None:
        polys = _polygons_px(grid, size, boxes.centers_ego, boxes.yaws_ego, boxes.sizes_lwh[:, :2])
        rec.log(
            "bev/actors",
            rr.LineStrips2D(
                polys, colors=colors, labels=labels, radii=1.0, draw_order=4.0, show_labels=False
            ),
        )


def log_trajectory_3d(rec: Any, name: str, xy: Any, color: Sequence[int]) -> None:
    """An ego-frame trajectory ``[N, 2]`` (from the origin) on the ground of the 3-D view."""
    import rerun as rr

    p = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if not len(p):
        return
    pts = np.concatenate([np.zeros((1, 2)), p])
    ground = np.concatenate([pts, np.full((len(pts), 1), 0.05)], axis=1).astype(np.float32)
    rec.log(f"scene/trajectory/{name}", rr.LineStrips3D([ground], colors=[tuple(color)], radii=0.08))


# ------------------------------------------------------------------------------------------ blueprint
@dataclass
class RecordingContents:
    """What a recording holds, for its blueprint (collected while frames are logged)."""

    camera_names: list[str]
    topdown: bool = False
    teacher: bool = False
    predicted: bool = False
    bev: bool = False
    reasons: bool = False


def default_blueprint(contents: RecordingContents) -> Any:
    """The layout a recording opens with: the cameras on top (three per row, in rig order); then the BEV
    panels (the teacher's risk map next to the student's when both exist, each with the actors' boxes and
    the trajectories), the 3-D scene and the top-down view; then speed and risk over time, the events and
    driver notes, and the route's document (and the teacher's reasons)."""
    import rerun.blueprint as rrb

    rows = []
    cams = [rrb.Spatial2DView(origin=f"cameras/{n}", name=n) for n in contents.camera_names]
    if cams:
        rows.append(rrb.Grid(*cams, grid_columns=min(3, len(cams)), name="cameras"))
    middle = []
    if contents.bev:
        if contents.teacher:
            teacher_only = ["+ bev/**", "- bev/risk/predicted"]
            middle.append(rrb.Spatial2DView(origin="bev", contents=teacher_only, name="BEV · teacher risk"))
        if contents.predicted:
            student_only = ["+ bev/**", "- bev/risk/teacher"]
            middle.append(rrb.Spatial2DView(origin="bev", contents=student_only, name="BEV · student risk"))
        if not (contents.teacher or contents.predicted):
            middle.append(rrb.Spatial2DView(origin="bev", name="BEV"))
    middle.append(rrb.Spatial3DView(origin="scene", name="3D · actors and plan"))
    if contents.topdown:
        middle.append(rrb.Spatial2DView(origin="topdown", name="top-down"))
    rows.append(rrb.Horizontal(*middle, name="scene"))
    bottom = [
        rrb.TimeSeriesView(origin="/", contents=["+ ego/**", "+ risk/**"], name="speed and risk"),
        rrb.TextLogView(origin="/", contents=["+ events", "+ driver/notes"], name="events"),
        rrb.TextDocumentView(origin="route", name="route"),
    ]
    if contents.reasons:
        bottom.append(rrb.TextDocumentView(origin="teacher/reasons", name="teacher reasons"))
    rows.append(rrb.Horizontal(*bottom, name="time"))
    shares = ([2.0] if cams else []) + [3.0, 1.6]
    return rrb.Blueprint(rrb.Vertical(*rows, row_shares=shares), collapse_panels=True)
