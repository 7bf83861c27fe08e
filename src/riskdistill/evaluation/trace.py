"""A per-step trace of a closed-loop drive (``riskdistill eval closed-loop --trace``): one JSON line per
recorded step with what the car did, what the driver planned and what it saw, next to where the other road
users really were, for diagnosing a route without a viewer (e.g. why a student hits a crossing pedestrian).

A line (``OUT/trace/<route_id>.jsonl``, written atomically when the route ends)::

    {"step": 40, "time_s": 4.0, "progress_m": 31.2, "speed_mps": 6.1, "x_m": .., "y_m": .., "yaw_rad": ..,
     "planned": true, "braked": false, "plan_xy": [[x, y], ...],      # the action's waypoints, ego frame
     "p_stop": 0.81,                                                   # the planner's "stop" probability
     "actors": [{"id": 7, "class": "PEDESTRIAN", "x_m": 9.3, "y_m": -2.1, "speed_mps": 1.4,
                 "distance_m": 9.5, "occupancy_p": 0.62, "occupancy_any_p": 0.9}, ...],
     "events": [{"kind": "collisions_pedestrian", "time_s": 4.0, "message": ".."}]}

``actors`` are the nearest ``max_actors`` within ``radius_m`` of the rear axle (ego frame; ground truth, read
here by the evaluator, never by the driver). ``occupancy_p`` is the highest probability the driver's own BEV
occupancy gives the actor's channel on its footprint, ``occupancy_any_p`` the highest over the three actor
channels (vehicle, vulnerable road user, static obstacle: something is there, of whatever class; what the
occupancy brake reacts to), both for a student driven by the ``eager`` engine, or any engine with the
occupancy brake (drivers that expose ``last_outputs["occupancy"]``; a student that plans every k-th step holds
the outputs of its last planning step, so between plans the occupancy is up to k - 1 steps older than the
actors' positions); ``p_stop`` needs the
planner's ``speed_logits``. Keys a driver cannot fill are left out. Every ``every``-th step is written, and
every step that raised an infraction.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.io import atomic_write_text
from riskdistill.types import ActorClass

TRACE_DIR = "trace"  # <out>/trace/<route_id>.jsonl


def _r(v: float, digits: int = 3) -> float:
    return round(float(v), digits)


def _softmax_first(logits: np.ndarray) -> float:
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    e = np.exp(z - z.max())
    return float(e[0] / e.sum())


class RouteTraceRecorder:
    """Traces one route (a :class:`~riskdistill.evaluation.route_runner.RouteRecorder`): ``start`` once the
    driver exists, ``after_act`` after every driver step, ``finish`` -> the written path (``abort``: nothing
    is written)."""

    def __init__(self, path: str | Path, every: int = 1, radius_m: float = 40.0, max_actors: int = 6):
        self.path = Path(path)
        self.every = max(1, int(every))
        self.radius_m = float(radius_m)
        self.max_actors = int(max_actors)
        self.driver: Any = None
        self.grid: Any = None
        self.lines: list[str] = []
        self._step = 0
        self._n_events = 0

    @property
    def n_frames(self) -> int:
        return len(self.lines)

    def start(self, env: Any, driver: Any) -> None:
        from riskdistill.evaluation.drivers import driver_bev_grid

        self.driver, self.grid = driver, driver_bev_grid(driver)

    def _events(self, env: Any) -> list[dict[str, Any]]:
        log = getattr(env, "log", None)
        if log is None or len(log.events) <= self._n_events:
            return []
        new = log.events[self._n_events :]
        self._n_events = len(log.events)
        return [{"kind": str(e.kind.value), "time_s": _r(e.time_s, 2), "message": e.message} for e in new]

    def _actors(self, env: Any, occupancy: np.ndarray | None) -> list[dict[str, Any]]:
        a, ego = env.world.actors, env.world.ego
        if a.n <= 1:
            return []
        idx = np.arange(1, a.n)  # actor 0 is the ego
        c, s = math.cos(ego.yaw_rad), math.sin(ego.yaw_rad)
        dx, dy = a.x[idx] - ego.x_m, a.y[idx] - ego.y_m
        x, y = c * dx + s * dy, -s * dx + c * dy
        dist = np.hypot(x, y)
        near = [int(i) for i in np.argsort(dist, kind="stable") if dist[i] <= self.radius_m][
            : self.max_actors
        ]
        if not near:
            return []
        seen: dict[int, tuple[float, float]] = {}
        if occupancy is not None and self.grid is not None:
            from riskdistill.data.targets import OCCUPANCY_CHANNEL_OF_CLASS, box_footprint_mask
            from riskdistill.evaluation.object_recall import ACTOR_CHANNELS

            k = idx[near]
            yaw = np.asarray(a.yaw[k], dtype=np.float64) - ego.yaw_rad
            masks = box_footprint_mask(
                self.grid,
                np.stack([x[near], y[near]], 1),
                np.stack([a.length[k], a.width[k]], 1).astype(np.float64),
                yaw,
            )
            prob = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(occupancy, dtype=np.float64)))  # sigmoid
            for j, i in enumerate(near):
                ch = OCCUPANCY_CHANNEL_OF_CLASS.get(int(a.cls[idx[i]]), -1)
                if ch >= 0 and len(prob) >= len(ACTOR_CHANNELS) and masks[j].any():
                    on = prob[: len(ACTOR_CHANNELS), masks[j]]  # [3, cells]
                    seen[i] = (float(on[ch].max()), float(on.max()))
        out = []
        for i in near:
            k = int(idx[i])
            d = {
                "id": int(a.id[k]),
                "class": ActorClass(int(a.cls[k])).name,
                "x_m": _r(x[i], 2),
                "y_m": _r(y[i], 2),
                "speed_mps": _r(a.speed[k], 2),
                "distance_m": _r(dist[i], 2),
            }
            if i in seen:
                d["occupancy_p"], d["occupancy_any_p"] = _r(seen[i][0]), _r(seen[i][1])
            out.append(d)
        return out

    def after_act(self, env: Any, agent_input: Any, action: Any = None) -> None:
        step = self._step
        self._step += 1
        events = self._events(env)
        if step % self.every and not events:
            return
        ego = env.world.ego
        driver = self.driver
        outputs = getattr(driver, "last_outputs", None) or {}
        line: dict[str, Any] = {
            "step": step,
            "time_s": _r(env.world.time_s, 2),
            "progress_m": _r(env.progress_m, 2),
            "speed_mps": _r(agent_input.ego.speed_mps),
            "x_m": _r(ego.x_m),
            "y_m": _r(ego.y_m),
            "yaw_rad": _r(ego.yaw_rad, 4),
        }
        for flag in ("planned", "braked"):
            if isinstance(getattr(driver, flag, None), bool):
                line[flag] = getattr(driver, flag)
        wp = getattr(action, "waypoints_ego", None)
        if wp is not None:
            line["plan_xy"] = np.round(np.asarray(wp, dtype=np.float64), 2).tolist()
        controls = getattr(action, "controls", None)
        if controls is not None:
            line["controls"] = {k: _r(getattr(controls, k)) for k in ("throttle", "brake", "steer")}
        if "speed_logits" in outputs:
            line["p_stop"] = _r(_softmax_first(outputs["speed_logits"]))
        line["actors"] = self._actors(env, outputs.get("occupancy"))
        line["events"] = events
        self.lines.append(json.dumps(line, separators=(",", ":")))

    def finish(self, env: Any, info: dict[str, Any] | None = None) -> Path:
        """Write the trace, with the infractions of the route's last step (steps are traced before
        ``env.step``) and ``info`` (the route's outcome) as a last line ``{"end": info, "events": [...]}``."""
        end = {"end": info or {}, "events": self._events(env)}
        atomic_write_text(self.path, "\n".join([*self.lines, json.dumps(end, separators=(",", ":"))]) + "\n")
        return self.path

    def abort(self) -> None:
        self.lines = []


@dataclass(frozen=True)
class TraceRecording:
    """Makes each route's :class:`RouteTraceRecorder` (a closed-loop recorder factory: picklable, built in
    the worker); ``every``: trace every N-th simulator step."""

    every: int = 1
    radius_m: float = 40.0
    max_actors: int = 6
    key: str = "trace"

    def __call__(self, out_dir: Path, route_id: str) -> RouteTraceRecorder:
        path = Path(out_dir) / TRACE_DIR / f"{route_id}.jsonl"
        return RouteTraceRecorder(path, self.every, self.radius_m, self.max_actors)

    def describe(self) -> dict[str, Any]:
        return {"every": self.every, "radius_m": self.radius_m, "max_actors": self.max_actors}


def read_trace(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A trace file -> (its step lines, its end line). ValueError naming the file and line when a line is
    not JSON or the end line is missing (a trace is written whole, so that means the file was damaged)."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    for n, text in enumerate(path.read_text().splitlines(), 1):
        try:
            rows.append(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {n} is not JSON ({exc.msg})") from exc
    if not rows or "end" not in rows[-1]:
        raise ValueError(f"{path}: no end line (the trace file is incomplete)")
    return rows[:-1], rows[-1]
