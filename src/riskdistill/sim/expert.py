"""The privileged expert: it reads ground truth and produces the demonstrations students learn from.

Per step it builds a reference path (the route, shifted sideways while going around a static blocker),
then picks a speed with the Intelligent Driver Model against the nearest of:

- an actor in its corridor now (lead vehicle, pedestrian on the road, blocker),
- a predicted conflict: every moving actor is rolled forward along its own path (privileged) and the
  ego along the reference path at its nominal speed; the first overlap becomes an obstacle,
- a red/yellow light or an unserved stop sign on the route.

An emergency vehicle coming up from behind in the ego's lane makes it move over to a neighbouring lane (when
that lane is free), slow down until the vehicle has passed, and move back.

The target speed respects the lane's speed limit, curvature, and caution near occluders (parked
vehicles or big static objects next to the path, crosswalks, pedestrians near the kerb). Steering is
pure pursuit on the reference path; pedals come from the commanded acceleration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskdistill.contracts.agent import Action, AgentInput, Controls, SensorRequest
from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M
from riskdistill.contracts.plan import waypoints_from_path_speed
from riskdistill.geometry import box_corners_2d
from riskdistill.sim.actors import Behavior
from riskdistill.sim.env import DrivingEnv
from riskdistill.sim.route import smoothstep
from riskdistill.types import ActorClass, LightState

STATIC_STANDOFF_M = 4.0
PASS_SPEED_CAP_MPS = 7.0  # while going around a static blocker
YIELD_SPEED_SHARE = 0.7  # of the speed limit, while an emergency vehicle passes
YIELD_WAIT_SHARE = 0.5  # of the speed limit, while waiting for a gap to move over
YIELD_LOOK_BEHIND_M = 70.0


@dataclass(frozen=True)
class ExpertConfig:
    max_accel_mps2: float = 2.5
    comfort_decel_mps2: float = 3.0
    headway_s: float = 1.2
    min_gap_m: float = 3.0
    line_min_gap_m: float = 1.2  # stop this far before a stop line
    lat_accel_max_mps2: float = 2.2
    forecast_horizon_s: float = 6.0
    forecast_dt_s: float = 0.25
    nominal_accel_mps2: float = 2.0
    occluder_speed_mps: float = 6.0
    crosswalk_speed_mps: float = 6.0
    walker_near_speed_mps: float = 4.0
    junction_speed_mps: float = 8.0
    lookahead_m: float = 70.0
    ego_margin_lat_m: float = 0.45
    ego_margin_lon_m: float = 1.2
    avoid_margin_m: float = 0.7
    # Recovery data (DART-style noise injection): bursts of steering offset on the executed controls while
    # the expert's own plan (``last_plan_*``) stays the label. 0 = off.
    steer_noise: float = 0.0  # largest steering offset of a burst ([-1, 1] steering units)
    noise_interval_s: float = 8.0  # mean time between bursts
    noise_duration_s: tuple[float, float] = (0.5, 1.5)
    noise_seed: int = 0


PLAN_PATH_POINTS = 20  # the expert's plan as a path: points every PLAN_PATH_SPACING_M ahead of the rear axle
PLAN_PATH_SPACING_M = 1.0
PLAN_SPEED_HORIZON_S = 1.0  # the plan's target speed: where its acceleration takes the speed in this time


@dataclass
class _Avoidance:
    s_ramp_in: float
    s_full: float
    s_hold_end: float
    s_ramp_out: float
    offset_m: float
    speed_cap_mps: float = PASS_SPEED_CAP_MPS
    yielding: bool = False  # moved over for an emergency vehicle (not around a blocker)


def _plan_offset(plan: _Avoidance, s: np.ndarray) -> np.ndarray:
    """Lateral offset (left positive) of the reference path at arc lengths ``s`` during a pass."""
    up = smoothstep((s - plan.s_ramp_in) / max(plan.s_full - plan.s_ramp_in, 1e-3))
    down = 1.0 - smoothstep((s - plan.s_hold_end) / max(plan.s_ramp_out - plan.s_hold_end, 1e-3))
    return plan.offset_m * np.minimum(up, down)


def _start_from_current_offset(plan: _Avoidance, s_centre: float, lateral_m: float) -> None:
    """Shift a new pass's ramp back so that it passes through the ego's present lateral offset at
    ``s_centre`` (same ramp length): a pass re-planned while the car already stands half in the next lane
    must not first steer it back onto the blocked line (it then stood behind the blocker for good)."""
    share = lateral_m / plan.offset_m if plan.offset_m > 0 else 0.0
    if share <= 0.05 or plan.s_ramp_in <= s_centre:
        return
    u = float(np.interp(min(share, 1.0), smoothstep(_RAMP_U), _RAMP_U))  # invert the ramp's blend
    length = plan.s_full - plan.s_ramp_in
    plan.s_ramp_in = s_centre - u * length
    plan.s_full = plan.s_ramp_in + length


_RAMP_U = np.linspace(0.0, 1.0, 101)


class ExpertDriver:
    """Privileged rule-based driver. Construct it with the environment it drives in: the class is its own
    ``privileged`` factory (:func:`riskdistill.sim.rollout.build_driver` hands it the environment)."""

    sensors = SensorRequest()
    privileged = True

    def __init__(self, env: DrivingEnv, config: ExpertConfig | None = None):
        self.env = env
        self.cfg = config or ExpertConfig()
        self.reset()

    @classmethod
    def with_config(cls, config: ExpertConfig) -> ExpertFactory:
        """A privileged factory for an expert with ``config`` (e.g. steering noise for recovery data)."""
        return ExpertFactory(config)

    def reset(self) -> None:
        self._rng = np.random.default_rng(self.cfg.noise_seed)
        self._noise_left_s = 0.0
        self._noise_steer = 0.0
        self.noise_steer = 0.0  # the steering offset added to this step's controls (0: none)
        self.last_plan_path_world: np.ndarray | None = None  # [PLAN_PATH_POINTS, 2]
        self.last_plan_speed_mps = 0.0
        self._served_stops: set[int] = set()
        self._stop_timer = 0.0
        self._avoid: _Avoidance | None = None
        self._wait_s = 0.0
        self._last_corridor_actor = -1
        self._nudge_m = 0.0
        self._yield_ev: int | None = None
        self._yield_wait_cap = np.inf
        self.last_reason = ""

    # ------------------------------------------------------------------------------------------ main
    def act(self, agent_input: AgentInput) -> Action:
        env, cfg = self.env, self.cfg
        world = env.world
        route = env.instance.route
        ego = world.ego
        v = ego.speed_mps
        rear = np.array([ego.x_m, ego.y_m])
        s_rear, lat_m = route.path.project(
            rear, s_hint=env.progress_m - EGO_REAR_AXLE_TO_CENTER_M, window_m=10.0
        )
        s_centre = s_rear + EGO_REAR_AXLE_TO_CENTER_M
        half_len = 0.5 * world.actors.length[0]

        self._plan_avoidance(s_centre, v, lat_m)
        self._plan_yield(s_centre, v)
        target = self._invader_nudge(s_centre) if self._avoid is None else 0.0
        self._nudge_m += float(np.clip(target - self._nudge_m, -0.15, 0.15))
        s_grid = np.arange(s_rear - 2.0, s_rear + cfg.lookahead_m, 0.5)
        ref = self._reference(s_grid)

        v_target = self._target_speed(s_grid, ref, s_rear, v)
        gap, lead_v, reason = self._corridor_gap(s_grid, ref, s_centre + half_len)
        standoff = self._avoid is not None and not self._avoid.yielding and np.isfinite(gap)
        if standoff and self._resolve_standoff(s_centre, half_len):
            ref = self._reference(s_grid)
            gap, lead_v, reason = self._corridor_gap(s_grid, ref, s_centre + half_len)
        g2, why2 = self._forecast_gap(s_grid, ref, s_centre, v, v_target)
        if g2 < gap:
            gap, lead_v, reason = g2, 0.0, why2
        g3, why3 = self._stop_line_gap(s_centre + half_len, v)
        line = g3 < gap
        if line:
            gap, lead_v, reason = g3, 0.0, why3

        accel = self._idm(v, v_target, gap, lead_v, line)
        self.last_reason = reason
        self._wait_s = self._wait_s + world.dt_s if v < 0.1 else 0.0
        controls = self._pedals(accel, v, v_target)
        steer = self._steer(rear, ego.yaw_rad, s_rear, v, s_grid, ref)
        s_plan = s_rear + PLAN_PATH_SPACING_M * np.arange(1, PLAN_PATH_POINTS + 1)
        self.last_plan_path_world = np.stack(
            [np.interp(s_plan, s_grid, ref[:, 0]), np.interp(s_plan, s_grid, ref[:, 1])], axis=1
        )
        self.last_plan_speed_mps = float(
            np.clip(v + accel * PLAN_SPEED_HORIZON_S, 0.0, max(v_target, 0.0) if accel >= 0 else v)
        )
        steer = float(np.clip(steer + self._noise(world.dt_s), -1.0, 1.0))
        return Action(controls=Controls(throttle=controls[0], steer=steer, brake=controls[1]))

    def _noise(self, dt_s: float) -> float:
        """The steering offset of a noise burst at this step (``cfg.steer_noise`` > 0; seeded)."""
        cfg = self.cfg
        if cfg.steer_noise <= 0.0:
            return 0.0
        if self._noise_left_s <= 0.0 and self._rng.random() < dt_s / max(cfg.noise_interval_s, dt_s):
            self._noise_left_s = float(self._rng.uniform(*cfg.noise_duration_s))
            sign = self._rng.choice([-1.0, 1.0])
            self._noise_steer = float(self._rng.uniform(0.4, 1.0) * cfg.steer_noise * sign)
        if self._noise_left_s > 0.0:
            self._noise_left_s -= dt_s
            self.noise_steer = self._noise_steer
        else:
            self.noise_steer = 0.0
        return self.noise_steer

    # ------------------------------------------------------------------------------------------ path
    def _offset_at(self, s: np.ndarray) -> np.ndarray:
        if self._avoid is None:
            return np.full_like(s, self._nudge_m, dtype=np.float64)
        return _plan_offset(self._avoid, s)

    def _reference(self, s_grid: np.ndarray) -> np.ndarray:
        path = self.env.instance.route.path
        pts = path.point_at(s_grid)
        h = path.heading_at(s_grid)
        off = self._offset_at(s_grid)
        return pts + off[:, None] * np.stack([-np.sin(h), np.cos(h)], axis=1)

    def _plan_avoidance(self, s_centre: float, v: float, lateral_m: float) -> None:
        """Go around static blockers on the route, committing only when the target lane is clear
        (``lateral_m``: the car's present offset from the route, left positive).

        The decision is taken just before the swerve would start, so the clearance check covers the
        whole pass; until then (or while the lane is busy) the blocker is an obstacle to stop behind.
        """
        if self._avoid is not None and s_centre > self._avoid.s_ramp_out:
            self._avoid = None
        blockers = self._static_blockers(s_centre)
        if blockers is None:
            return
        s0, s1, need = blockers
        route = self.env.instance.route
        lane_id = int(
            route.lane_of_point[min(int(np.searchsorted(route.path.s, s0)), len(route.lane_of_point) - 1)]
        )
        lane_w = self.env.world.map.lanes[lane_id].width_m
        offset = float(np.clip(need, 1.0, lane_w + 0.6))
        ramp = float(np.clip(1.2 * v + 8.0, 9.0, 18.0))
        av = self._avoid
        if av is not None:
            if offset > av.offset_m + 0.3 and s0 - s_centre < 25.0:
                self._avoid = None  # much wider than planned, and close: re-plan (braking first if needed)
                return
            # The blocked zone revealed itself further ahead (or wider): extend the manoeuvre.
            if s1 + 3.0 > av.s_hold_end or offset > av.offset_m + 0.05:
                av.s_hold_end = max(av.s_hold_end, s1 + 3.0)
                av.s_ramp_out = max(av.s_ramp_out, av.s_hold_end + ramp)
                av.offset_m = max(av.offset_m, offset)
            return
        s_full = s0 - 1.5
        s_in = s_full - ramp
        if s_in > s_centre + 6.0:
            return  # not yet: decide right before the swerve
        if s_in < s_centre + 1.0:
            s_in = s_centre + 1.0
            s_full = max(s_full, s_in + 7.0)
        plan = _Avoidance(s_in, s_full, s1 + 3.0, s1 + 3.0 + ramp, offset)
        _start_from_current_offset(plan, s_centre, lateral_m)
        if self._side_clear(plan, v):
            self._avoid = plan

    def _plan_yield(self, s_centre: float, v: float) -> None:
        """Move over for an emergency vehicle coming up behind us in our lane; move back once it passed."""
        av = self._avoid
        self._yield_wait_cap = np.inf
        if self._yield_ev is not None:
            a = self.env.world.actors
            j = self._yield_ev
            path = self.env.instance.route.path
            s_j, _ = path.project(np.array([a.x[j], a.y[j]]), s_hint=s_centre, window_m=80.0)
            gone = a.behavior[j] != Behavior.VEHICLE
            passed = gone or s_j - s_centre > 0.5 * (a.length[j] + a.length[0]) + 6.0
            if passed and av is not None and av.yielding:
                ramp = float(np.clip(1.2 * v + 8.0, 12.0, 25.0))
                av.s_hold_end = max(min(av.s_hold_end, s_centre + 2.0), av.s_full)
                av.s_ramp_out = av.s_hold_end + ramp
                av.speed_cap_mps = np.inf
            if passed or av is None:
                self._yield_ev = None
            return
        if av is not None:
            return
        j = self._emergency_behind(s_centre)
        if j is None:
            return
        route = self.env.instance.route
        k = min(int(np.searchsorted(route.path.s, s_centre)), len(route.lane_of_point) - 1)
        lane = self.env.world.map.lanes[int(route.lane_of_point[k])]
        sides = [
            (n, sign) for n, sign in ((lane.right_neighbor, -1.0), (lane.left_neighbor, 1.0)) if n is not None
        ]
        if not sides:
            return  # nowhere to go
        ramp = float(np.clip(1.2 * v + 8.0, 12.0, 25.0))
        cap = YIELD_SPEED_SHARE * lane.speed_limit_mps
        hold = s_centre + 1.0 + ramp + 1000.0
        for _, sign in sides:
            offset = sign * lane.width_m
            plan = _Avoidance(
                s_centre + 1.0, s_centre + 1.0 + ramp, hold, hold + ramp, offset, cap, yielding=True
            )
            if self._lane_free(plan, v, cap, j):
                self._avoid = plan
                self._yield_ev = j
                return
        # Both sides busy: slow down so that the traffic beside us gets ahead and leaves a gap.
        self._yield_wait_cap = YIELD_WAIT_SHARE * lane.speed_limit_mps

    def _emergency_behind(self, s_centre: float) -> int | None:
        """An emergency vehicle behind us in our lane, driving our way, within 70 m; None if there is none."""
        a = self.env.world.actors
        n = a.n
        path = self.env.instance.route.path
        cand = np.flatnonzero(
            (a.cls[:n] == ActorClass.EMERGENCY_VEHICLE) & (a.behavior[:n] == Behavior.VEHICLE)
        )
        for j in cand:
            if (a.x[j] - a.x[0]) ** 2 + (a.y[j] - a.y[0]) ** 2 > YIELD_LOOK_BEHIND_M**2:
                continue
            s_j, lat_j = path.project(np.array([a.x[j], a.y[j]]), s_hint=s_centre - 35.0, window_m=50.0)
            same_way = np.cos(a.yaw[j] - float(path.heading_at(s_j))) > 0.8
            if s_j < s_centre and abs(lat_j) < 1.5 and same_way:
                return int(j)
        return None

    def _lane_free(self, plan: _Avoidance, v: float, v_cap: float, ignore: int) -> bool:
        """Room on the shifted path while we move over (slowing to ``v_cap`` at 2 m/s^2) and for 6 s on it.

        Positions are compared at equal times in route coordinates: a vehicle ahead of us needs 3 m of room, a
        vehicle behind us 2 m plus 1 s at its speed (it brakes for us, as IDM drivers do).
        """
        a = self.env.world.actors
        n = a.n
        path = self.env.instance.route.path
        ts = np.arange(0.0, 6.01, 0.5)
        v_t = np.maximum(v - 2.0 * ts, min(v, v_cap))
        s_t = plan.s_ramp_in - 1.0 + np.concatenate([[0.0], np.cumsum(0.5 * (v_t[1:] + v_t[:-1]) * 0.5)])
        off_t = _plan_offset(plan, s_t)
        for j in range(1, n):
            if j == ignore or a.behavior[j] == Behavior.WALKER:
                continue
            if (a.x[j] - a.x[0]) ** 2 + (a.y[j] - a.y[0]) ** 2 > 120.0**2:
                continue
            s_j, lat_j = path.project_many(self._predict(j, ts), s_t[0] - 80.0, s_t[-1] + 80.0)
            half = 0.5 * (a.length[j] + a.length[0])
            beside = np.abs(lat_j - off_t) < 0.5 * (a.width[j] + a.width[0]) + 0.6
            ds = s_j - s_t
            clash = beside & (ds < half + 3.0) & (ds > -(half + 2.0 + 1.0 * a.speed[j]))
            if clash.any():
                return False
        return True

    def _resolve_standoff(self, s_centre: float, half_len: float) -> bool:
        """Something is in the way of the pass (usually oncoming traffic that stopped for us).

        Before the blocker: give up the pass and return behind it. Past the blocker: return to the own
        lane over a short ramp. Returns whether the reference path changed.
        """
        av = self._avoid
        blocker_start = av.s_full + 1.5
        blocker_end = av.s_hold_end - 3.0
        j = self._last_corridor_actor
        a = self.env.world.actors
        if j < 0 or a.behavior[j] == Behavior.STATIC:
            return False
        if s_centre + half_len < blocker_start - 0.5:
            self._avoid = None
            return True
        if s_centre - half_len < blocker_end + 0.5 or av.s_ramp_out - s_centre <= 8.5:
            return False
        av.s_hold_end = min(av.s_hold_end, s_centre)
        av.s_ramp_out = s_centre + 8.0
        return True

    def _invader_nudge(self, s_centre: float) -> float:
        """Shift right (negative offset, at most 1.2 m) from oncoming vehicles about to cut into our lane.

        Oncoming vehicles are rolled forward along their own paths for 6 s; where they will be beside
        our path ahead, their right edge must stay clear of our left side.
        """
        world = self.env.world
        a = world.actors
        path = self.env.instance.route.path
        n = a.n
        idx = np.flatnonzero(a.behavior[:n] == Behavior.VEHICLE)
        keep_clear = 0.5 * a.width[0] + 0.6
        ts = np.arange(0.0, 6.01, 0.5)
        need = 0.0
        for j in idx:
            if (a.x[j] - a.x[0]) ** 2 + (a.y[j] - a.y[0]) ** 2 > 110.0**2:
                continue
            s_j, _ = path.project(np.array([a.x[j], a.y[j]]), s_hint=s_centre + 50.0, window_m=70.0)
            if np.cos(a.yaw[j] - float(path.heading_at(s_j))) > -0.8:
                continue  # not oncoming
            s_f, lat_f = path.project_many(self._predict(j, ts), s_centre - 5.0, s_centre + 120.0)
            beside = (s_f > s_centre - 3.0) & (s_f < s_centre + 90.0) & (lat_f > -2.0)
            if beside.any():
                right_edge = float(lat_f[beside].min()) - 0.5 * a.width[j]
                need = max(need, keep_clear - right_edge)
        return -float(np.clip(need, 0.0, 1.2))

    def _static_blockers(self, s_centre: float) -> tuple[float, float, float] | None:
        """``(s_start, s_end, left offset needed)`` of static actors blocking the route ahead, or None."""
        world = self.env.world
        a = world.actors
        path = self.env.instance.route.path
        n = a.n
        idx = np.flatnonzero((a.behavior[:n] == Behavior.STATIC) & (np.arange(n) > 0))
        near = (a.x[idx] - a.x[0]) ** 2 + (a.y[idx] - a.y[0]) ** 2 < 75.0**2
        idx = idx[near]
        if len(idx) == 0:
            return None
        corners = box_corners_2d(
            np.stack([a.x[idx], a.y[idx]], axis=1), a.yaw[idx], a.length[idx], a.width[idx]
        )
        s_c, lat_c = path.project_many(
            np.stack([a.x[idx], a.y[idx]], axis=1), s_centre - 5.0, s_centre + 75.0
        )
        ahead = (s_c > s_centre) & (s_c < s_centre + 60.0) & (np.abs(lat_c) < 6.0)
        if not ahead.any():
            return None
        corners = corners[ahead]
        ss, lats = path.project_many(corners.reshape(-1, 2), s_centre - 10.0, s_centre + 75.0)
        ss, lats = ss.reshape(-1, 4), lats.reshape(-1, 4)
        half_w = 0.5 * a.width[0] + 0.25
        blocking = (lats.min(axis=1) < half_w) & (lats.max(axis=1) > -half_w)
        hits = sorted(
            zip(ss.min(axis=1), ss.max(axis=1), lats.min(axis=1), lats.max(axis=1), blocking, strict=True)
        )
        if not blocking.any():
            return None
        first = next(k for k, h in enumerate(hits) if h[4])
        s0, s1, lat_max = hits[first][0], hits[first][1], hits[first][3]
        for h in hits[first + 1 :]:
            if h[4] and h[0] < s1 + 15.0:
                s1, lat_max = max(s1, h[1]), max(lat_max, h[3])
        # Anything static beside the zone that the shifted path would brush counts too (cones on the line).
        for h in hits:
            if h[0] < s1 + 3.0 and h[1] > s0 - 3.0 and h[2] < lat_max + a.width[0] + self.cfg.avoid_margin_m:
                lat_max = max(lat_max, h[3])
        need = lat_max + 0.5 * a.width[0] + self.cfg.avoid_margin_m
        return float(s0), float(s1), float(need)

    def _side_clear(self, plan: _Avoidance, v: float) -> bool:
        """No moving actor occupies, or will occupy during the pass, the shifted part of the path."""
        world = self.env.world
        a = world.actors
        path = self.env.instance.route.path
        n = a.n
        s_pass = np.arange(plan.s_ramp_in, plan.s_ramp_out, 1.0)
        h = path.heading_at(s_pass)
        off = _plan_offset(plan, s_pass)
        pts = path.point_at(s_pass) + off[:, None] * np.stack([-np.sin(h), np.cos(h)], axis=1)
        v_pass = max(v, 4.0)
        t_pass = (plan.s_ramp_out - plan.s_ramp_in) / v_pass + 4.0
        ts = np.arange(0.0, t_pass + 0.01, 0.5)
        moving = np.flatnonzero((a.behavior[:n] == Behavior.VEHICLE) | (a.behavior[:n] == Behavior.WALKER))
        for j in moving:
            if (a.x[j] - a.x[0]) ** 2 + (a.y[j] - a.y[0]) ** 2 > (
                plan.s_ramp_out - plan.s_ramp_in + 150.0
            ) ** 2:
                continue
            p = self._predict(j, ts)  # [T, 2]
            d = np.linalg.norm(p[:, None, :] - pts[None], axis=2)
            if d.min() < 0.5 * a.width[j] + 2.2:
                return False
        return True

    # ------------------------------------------------------------------------------------------ speed
    def _target_speed(self, s_grid: np.ndarray, ref: np.ndarray, s_rear: float, v: float) -> float:
        cfg = self.cfg
        env = self.env
        world = env.world
        route = env.instance.route
        d_ahead = s_grid - s_rear
        lane_ids = route.lane_of_point[
            np.clip(np.searchsorted(route.path.s, s_grid), 0, len(route.lane_of_point) - 1)
        ]
        lanes = world.map.lanes
        limits = np.array([lanes[int(lid)].speed_limit_mps for lid in lane_ids])
        in_junction = np.array([lanes[int(lid)].junction_id is not None for lid in lane_ids])
        limits = np.where(in_junction, np.minimum(limits, cfg.junction_speed_mps), limits)
        # Curvature of the reference path.
        d = np.gradient(ref, axis=0)
        heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
        kappa = np.abs(np.gradient(heading)) / 0.5
        kappa = np.convolve(kappa, np.ones(5) / 5, mode="same")
        limits = np.minimum(limits, np.sqrt(cfg.lat_accel_max_mps2 / np.maximum(kappa, 1e-4)))
        if self._avoid is not None:
            limits = np.minimum(limits, self._avoid.speed_cap_mps)
        limits = np.minimum(limits, self._yield_wait_cap)
        caps = self._caution_caps(s_grid, ref)
        limits = np.minimum(limits, caps)
        # Reach each limit with comfortable braking.
        reachable = np.sqrt(limits**2 + 2.0 * 2.0 * np.maximum(d_ahead, 0.0))
        return float(np.min(np.where(d_ahead >= 0, reachable, limits.max())))

    def _caution_caps(self, s_grid: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Speed caps near occluders, crosswalks and pedestrians close to the path."""
        cfg = self.cfg
        world = self.env.world
        a = world.actors
        n = a.n
        caps = np.full(len(s_grid), np.inf)
        if n > 1:
            pos = np.stack([a.x[1:n], a.y[1:n]], axis=1)
            dist = np.linalg.norm(ref[:, None, :] - pos[None], axis=2)  # [K, n-1]
            nearest = dist.min(axis=0)
            cls = a.cls[1:n]
            beh = a.behavior[1:n]
            big_static = (beh == Behavior.STATIC) & np.isin(
                cls, [ActorClass.CAR, ActorClass.VAN, ActorClass.TRUCK, ActorClass.BUS, ActorClass.BARRIER]
            )
            occluder = (
                big_static & (nearest > 0.5 * a.width[1:n] + 0.8) & (nearest < 0.5 * a.width[1:n] + 4.0)
            )
            walker = np.isin(cls, [ActorClass.PEDESTRIAN, ActorClass.CYCLIST]) & (nearest < 4.5)
            for mask, cap in ((occluder, cfg.occluder_speed_mps), (walker, cfg.walker_near_speed_mps)):
                for j in np.flatnonzero(mask):
                    k = int(np.argmin(dist[:, j]))
                    caps[max(k - 10, 0) : k + 4] = np.minimum(caps[max(k - 10, 0) : k + 4], cap)
        for cw in world.map.crosswalks.values():
            centre = cw.polygon.mean(axis=0)
            dist = np.linalg.norm(ref - centre, axis=1)
            k = int(np.argmin(dist))
            if dist[k] < 6.0:
                caps[max(k - 20, 0) : k + 4] = np.minimum(
                    caps[max(k - 20, 0) : k + 4], cfg.crosswalk_speed_mps
                )
        return caps

    def _corridor_gap(self, s_grid: np.ndarray, ref: np.ndarray, s_front: float) -> tuple[float, float, str]:
        """Distance from the ego front to the first actor box overlapping the corridor ahead, now."""
        world = self.env.world
        a = world.actors
        n = a.n
        ahead = s_grid >= s_front - EGO_REAR_AXLE_TO_CENTER_M - 0.5
        pts = ref[ahead]
        s_pts = s_grid[ahead] + EGO_REAR_AXLE_TO_CENTER_M  # rear-axle grid -> centre-based arc length
        self._last_corridor_actor = -1
        if n <= 1 or len(pts) == 0:
            return np.inf, 0.0, ""
        j = np.arange(1, n)
        c, s = np.cos(a.yaw[j]), np.sin(a.yaw[j])
        rx = pts[:, None, 0] - a.x[j][None]
        ry = pts[:, None, 1] - a.y[j][None]
        lx = rx * c + ry * s
        ly = -rx * s + ry * c
        inside = (np.abs(lx) < 0.5 * a.length[j] + 0.3) & (
            np.abs(ly) < 0.5 * a.width[j] + 0.5 * a.width[0] + 0.3
        )
        hit = inside.any(axis=0)
        self._last_corridor_actor = -1
        if not hit.any():
            return np.inf, 0.0, ""
        first = np.argmax(inside, axis=0)
        gaps = np.where(hit, s_pts[first] - s_front, np.inf)
        k = int(np.argmin(gaps))
        jj = j[k]
        self._last_corridor_actor = int(jj)
        lead_v = float(a.speed[jj] * np.cos(a.yaw[jj] - world.ego.yaw_rad))
        gap = float(gaps[k])
        if a.behavior[jj] == Behavior.STATIC:
            gap -= STATIC_STANDOFF_M  # wait with room to steer around it later
        return max(gap, 0.0), max(lead_v, 0.0), f"actor {jj} in path"

    def _predict(self, j: int, t: np.ndarray) -> np.ndarray:
        """Positions ``[T, 2]`` of actor ``j`` at times ``t``: along its path, else at constant velocity."""
        a = self.env.world.actors
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if a.path_id[j] >= 0 and a.behavior[j] in (Behavior.VEHICLE, Behavior.WALKER) and not a.hold[j]:
            return self.env.world.paths.interp(np.full(len(t), a.path_id[j]), a.s[j] + a.speed[j] * t)
        heading = np.array([np.cos(a.yaw[j]), np.sin(a.yaw[j])])
        return np.array([a.x[j], a.y[j]]) + a.speed[j] * t[:, None] * heading

    def _forecast_gap(
        self, s_grid: np.ndarray, ref: np.ndarray, s_centre: float, v: float, v_target: float
    ) -> tuple[float, str]:
        """First conflict between the ego (nominal speed profile) and any moving actor's forecast."""
        cfg = self.cfg
        world = self.env.world
        a = world.actors
        n = a.n
        if n <= 1:
            return np.inf, ""
        j = np.arange(1, n)
        moving = (a.speed[j] > 0.2) & (
            (a.behavior[j] == Behavior.VEHICLE) | (a.behavior[j] == Behavior.WALKER)
        )
        near = (a.x[j] - a.x[0]) ** 2 + (a.y[j] - a.y[0]) ** 2 < 90.0**2
        cand = j[moving & near]
        if len(cand) == 0:
            return np.inf, ""
        # Skip same-direction actors already in the ego lane ahead/behind: car-following handles them.
        path = self.env.instance.route.path
        keep = []
        for jj in cand:
            s_j, lat_j = path.project(np.array([a.x[jj], a.y[jj]]), s_hint=s_centre, window_m=60.0)
            dyaw = abs(np.angle(np.exp(1j * (a.yaw[jj] - float(path.heading_at(s_j))))))
            if dyaw < 0.35 and abs(lat_j - float(self._offset_at(np.array([s_j]))[0])) < 1.6:
                continue
            if dyaw < 0.6 and s_j < s_centre:
                continue  # behind us, same direction: braking would not help
            if (
                self._avoid is not None
                and dyaw > 2.3
                and not a.ignore_actors[jj]
                and a.behavior[jj] == Behavior.VEHICLE
            ):
                continue  # mid-pass: polite oncoming traffic yields to us; braking here would strand us
            keep.append(jj)
        if not keep:
            return np.inf, ""
        cand = np.array(keep)
        ts = np.arange(0.0, cfg.forecast_horizon_s + 1e-6, cfg.forecast_dt_s)
        v_nom = max(v_target, 1.0)
        v_t = np.minimum(v_nom, v + cfg.nominal_accel_mps2 * ts)
        s_t = s_centre + np.concatenate([[0.0], np.cumsum(0.5 * (v_t[1:] + v_t[:-1]) * np.diff(ts))])
        s_rear_grid = s_grid + EGO_REAR_AXLE_TO_CENTER_M
        ego_c = np.stack(
            [np.interp(s_t, s_rear_grid, ref[:, 0]), np.interp(s_t, s_rear_grid, ref[:, 1])], axis=1
        )
        h_next = np.stack(
            [np.interp(s_t + 1.0, s_rear_grid, ref[:, 0]), np.interp(s_t + 1.0, s_rear_grid, ref[:, 1])],
            axis=1,
        )
        fwd = h_next - ego_c
        fwd /= np.maximum(np.linalg.norm(fwd, axis=1, keepdims=True), 1e-6)
        L = a.length[0] + 2 * cfg.ego_margin_lon_m
        offs = np.array([-L / 3, 0.0, L / 3])
        ego_circ = ego_c[:, None, :] + offs[None, :, None] * fwd[:, None, :]  # [T, 3, 2]
        r_ego = 0.5 * a.width[0] + cfg.ego_margin_lat_m
        best = np.inf
        why = ""
        for jj in cand:
            s_path = a.s[jj] + a.speed[jj] * ts
            if a.path_id[jj] >= 0:
                ctr = world.paths.interp(np.full(len(ts), a.path_id[jj]), s_path)
                ahead = world.paths.interp(np.full(len(ts), a.path_id[jj]), s_path + 0.5)
                hdir = ahead - ctr
                hdir /= np.maximum(np.linalg.norm(hdir, axis=1, keepdims=True), 1e-6)
            else:
                hd = np.array([np.cos(a.yaw[jj]), np.sin(a.yaw[jj])])
                ctr = np.array([a.x[jj], a.y[jj]]) + a.speed[jj] * ts[:, None] * hd
                hdir = np.broadcast_to(hd, ctr.shape)
            if a.behavior[jj] == Behavior.WALKER:
                circ = ctr[:, None, :]
                r_a = 0.5 * a.width[jj] + 0.4
            else:
                lo = np.array([-a.length[jj] / 3, 0.0, a.length[jj] / 3])
                circ = ctr[:, None, :] + lo[None, :, None] * hdir[:, None, :]
                r_a = 0.5 * a.width[jj] + 0.2
            d = np.linalg.norm(ego_circ[:, :, None, :] - circ[:, None, :, :], axis=3)  # [T, 3, k]
            clash = (d < r_ego + r_a).any(axis=(1, 2))
            if clash.any():
                k = int(np.argmax(clash))
                # Conflicts the ego cannot avoid by braking (it is already there at t=0) are ignored
                # unless the actor is in front of us.
                g = s_t[k] - s_centre - 0.5
                if k == 0:
                    rel = np.array([a.x[jj] - a.x[0], a.y[jj] - a.y[0]])
                    if rel @ fwd[0] < 0.0:
                        continue
                if self._wait_s > 20.0 and a.speed[jj] < 0.3:
                    continue  # deadlock breaker
                if g < best:
                    best, why = max(g, 0.0), f"forecast conflict with actor {jj} at t={ts[k]:.2f}s"
        return best, why

    def _stop_line_gap(self, s_front: float, v: float) -> tuple[float, str]:
        env = self.env
        world = env.world
        route = env.instance.route
        best, why = np.inf, ""
        for sid in env._route_stop_lines:
            sl = world.map.stop_lines[sid]
            lane = world.map.lanes[sl.lane_id]
            s_line, lat = route.path.project(lane.point_at(sl.s_m), s_hint=s_front, window_m=80.0)
            if abs(lat) > 1.0:
                continue
            dist = s_line - s_front
            if dist < -0.5 or dist > 80.0:
                continue
            if sl.traffic_light_id is not None:
                state = world.light_state(sl.traffic_light_id)
                if state == LightState.GREEN:
                    continue
                if state == LightState.YELLOW and dist < v * v / (2.0 * 4.0):
                    continue  # cannot stop comfortably: clear the junction
                if dist < -0.1:
                    continue
                g = dist
            else:
                # Stop signs and yield lines alike: come to a halt at the line, then go when clear.
                if sid in self._served_stops or dist < -0.1:
                    continue
                if v < 0.05 and dist < 3.5:
                    self._stop_timer += world.dt_s
                    if self._stop_timer >= 1.0:
                        self._served_stops.add(sid)
                        self._stop_timer = 0.0
                        continue
                g = dist
            g = max(g - self.cfg.line_min_gap_m, 0.0)
            if g < best:
                best, why = g, f"stop line {sid}"
        return best, why

    # ------------------------------------------------------------------------------------------ control
    def _idm(self, v: float, v_target: float, gap: float, lead_v: float, line: bool) -> float:
        cfg = self.cfg
        v0 = max(v_target, 0.1)
        free = 1.0 - (v / v0) ** 4
        if not np.isfinite(gap):
            return float(np.clip(cfg.max_accel_mps2 * free, -cfg.comfort_decel_mps2, cfg.max_accel_mps2))
        s0 = 0.3 if line else cfg.min_gap_m
        dv = v - lead_v
        s_star = s0 + max(
            0.0, v * cfg.headway_s + v * dv / (2.0 * np.sqrt(cfg.max_accel_mps2 * cfg.comfort_decel_mps2))
        )
        acc = cfg.max_accel_mps2 * (free - (s_star / max(gap, 0.05)) ** 2)
        if gap < s0 + 0.2 and v < 0.5:
            acc = -8.0
        return float(np.clip(acc, -8.0, cfg.max_accel_mps2))

    def _pedals(self, accel: float, v: float, v_target: float) -> tuple[float, float]:
        p = self.env.world.ego_params
        if accel >= 0.0 and v_target > 0.2:
            authority = p.max_accel_mps2 * max(1.0 - p.drag_per_mps * v, 0.2)
            return float(np.clip(accel / authority, 0.0, 1.0)), 0.0
        if v < 0.2 and accel < 0.0:
            return 0.0, 1.0
        return 0.0, float(np.clip(-accel / p.max_brake_mps2, 0.0, 1.0))

    def _steer(
        self, rear: np.ndarray, yaw: float, s_rear: float, v: float, s_grid: np.ndarray, ref: np.ndarray
    ) -> float:
        p = self.env.world.ego_params
        ld = float(np.clip(2.5 + 0.35 * v, 3.0, 10.0))
        target = np.array(
            [np.interp(s_rear + ld, s_grid, ref[:, 0]), np.interp(s_rear + ld, s_grid, ref[:, 1])]
        )
        d = target - rear
        alpha = np.arctan2(d[1], d[0]) - yaw
        dist = max(float(np.hypot(*d)), 1e-3)
        delta = np.arctan2(2.0 * p.wheelbase_m * np.sin(alpha), dist)
        return float(np.clip(delta / p.max_steer_rad, -1.0, 1.0))


@dataclass(frozen=True)
class ExpertFactory:
    """A privileged factory of experts with a given config (see
    :func:`riskdistill.sim.rollout.build_driver`)."""

    config: ExpertConfig
    privileged: bool = True

    def __call__(self, env: DrivingEnv) -> ExpertDriver:
        return ExpertDriver(env, self.config)


class ExpertPlanDriver:
    """The expert's own plan, tracked by the built-in controller: the expert decides (path and target speed,
    exactly as when it drives itself) and the waypoint controller executes, as for a student that predicts
    a path and a speed. Its Driving Score is the ceiling the controller allows a perfect planner
    (``riskdistill eval closed-loop --driver expert-plan``)."""

    sensors = SensorRequest()
    privileged = True

    def __init__(self, env: DrivingEnv, config: ExpertConfig | None = None):
        self.env = env
        self.expert = ExpertDriver(env, config)

    @property
    def last_reason(self) -> str:
        return self.expert.last_reason

    def reset(self) -> None:
        self.expert.reset()

    def act(self, agent_input: AgentInput) -> Action:
        self.expert.act(agent_input)  # its controls are dropped: the plan is what counts
        e = self.env.world.ego
        c, s = np.cos(e.yaw_rad), np.sin(e.yaw_rad)
        d = self.expert.last_plan_path_world - np.array([e.x_m, e.y_m])
        path = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
        return Action(waypoints_ego=waypoints_from_path_speed(path, self.expert.last_plan_speed_mps))
