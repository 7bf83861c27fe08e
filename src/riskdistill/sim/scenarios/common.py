"""Helpers the scenario modules share: background traffic that keeps scenario lanes clear, vehicles
that enter at a scheduled time, per-step monitors, and path-conflict geometry."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from riskdistill.sim.actors import CLASS_SIZE_M, Behavior
from riskdistill.sim.route import Path
from riskdistill.sim.scenarios.background import MIN_SPAWN_SPACING_M, _free, random_lane_walk
from riskdistill.sim.scenarios.base import Action, BuildContext, Trigger
from riskdistill.sim.world import World
from riskdistill.types import ActorClass

HIDDEN_XY_M = (1.0e5, 1.0e5 + 200.0)  # where not-yet-present actors wait (off the map, apart from despawns)
EGO_HALF_LENGTH_M = 2.3

KeepClear = Sequence[tuple[int, float, float]]  # (lane id, s from, s to): no background spawns there


def add_background(ctx: BuildContext, density: float, keep_clear: KeepClear = ()) -> None:
    """Background vehicles as in :func:`~riskdistill.sim.scenarios.background.add_background_traffic`,
    except on the ``keep_clear`` lane ranges, where scenario actors drive or the ego must arrive first.

    Scenario types that call this set ``background_density = 0`` so the generic pass adds walkers only.
    """
    clear: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for lane_id, s0, s1 in keep_clear:
        clear[lane_id].append((s0, s1))
    lanes = [lane for lane in ctx.map.driving_lanes() if lane.junction_id is None and lane.length_m > 15.0]
    for lane in sorted(lanes, key=lambda ln: ln.id):
        n_target = int(ctx.rng.poisson(max(density, 0.0) * lane.length_m / 20.0))
        for _ in range(n_target):
            s0 = ctx.uniform(3.0, lane.length_m - 3.0)
            if any(lo <= s0 <= hi for lo, hi in clear[lane.id]):
                continue
            if not _free(ctx, lane.point_at(s0), MIN_SPAWN_SPACING_M):
                continue
            walk = random_lane_walk(ctx, lane.id, s0 + 250.0)
            pid = ctx.lane_path(walk, start_s_m=s0)
            v = lane.speed_limit_mps * ctx.uniform(0.6, 0.95)
            ctx.add_vehicle(pid, 0.0, v * ctx.uniform(0.7, 1.0), v, background=True)


def add_timed_vehicle(
    ctx: BuildContext,
    path_id: int,
    s_at_t0_m: float,
    speed_mps: float,
    cls: ActorClass | None = None,
    **flags: float | bool,
) -> int:
    """A vehicle that is at arc length ``s_at_t0_m`` of its path at ``t = 0`` and drives at ``speed_mps``.

    A negative ``s_at_t0_m`` means it is still upstream of the path: the actor waits hidden off the map and
    enters at the path start at ``t = -s_at_t0_m / speed_mps`` (a time trigger). Returns the actor index.
    """
    if s_at_t0_m >= 0.0:
        return ctx.add_vehicle(path_id, s_at_t0_m, speed_mps, speed_mps, cls=cls, **flags)
    cls = cls if cls is not None else ctx.vehicle_class()
    size, color = ctx.size_of(cls), ctx.color_of(cls)
    n = ctx.world.actors.n
    i = ctx.world.actors.add(
        cls,
        Behavior.STATIC,
        HIDDEN_XY_M[0] + 15.0 * n,
        HIDDEN_XY_M[1],
        0.0,
        size,
        desired_speed=speed_mps,
        path_id=path_id,
        color=color,
        **flags,
    )
    t_enter = -s_at_t0_m / speed_mps
    ctx.script.triggers.append(
        Trigger([_enter(i, path_id, speed_mps, t_enter)], time_s=t_enter, starts_scenario=False)
    )
    return i


def _enter(actor: int, path_id: int, speed_mps: float, t_enter_s: float) -> Action:
    def act(world: World) -> None:
        a = world.actors
        path = world.paths.paths[path_id]
        s = max(world.time_s - t_enter_s, 0.0) * speed_mps
        p = path.point_at(s)
        a.behavior[actor] = Behavior.VEHICLE
        a.path_id[actor] = path_id
        a.s[actor] = s
        a.x[actor], a.y[actor] = float(p[0]), float(p[1])
        a.yaw[actor] = float(path.heading_at(s))
        a.speed[actor] = speed_mps
        a.desired_speed[actor] = speed_mps
        a.hold[actor] = False

    return act


def add_monitor(ctx: BuildContext, fn: Action) -> None:
    """Run ``fn`` on every step (a repeating trigger; it never starts the scenario clock)."""
    ctx.script.triggers.append(Trigger([fn], time_s=0.0, starts_scenario=False, repeat=True))


def first_conflict(path: Path, other: Path, radius_m: float = 1.5) -> tuple[float, float] | None:
    """``(s on path, s on other)`` of the first point of ``path`` within ``radius_m`` of ``other``."""
    dist, j = cKDTree(other.points).query(path.points, distance_upper_bound=radius_m)  # [P], [P]
    near = np.flatnonzero(np.isfinite(dist))
    if len(near) == 0:
        return None
    i = int(near[0])
    return float(path.s[i]), float(other.s[int(j[i])])


def class_length_m(cls: ActorClass) -> float:
    return CLASS_SIZE_M[cls][0]


# --------------------------------------------------------------------------------------------------
# Junction geometry
