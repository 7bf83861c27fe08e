"""Vehicles that brake or cut in front of the ego (Bench2Drive names).

Cut-in timing: the cutter drives a lane-change path from standstill (or merges from a ramp) with the
World's free-road IDM, which :func:`free_ride` replays exactly, so its trajectory after release is known
at build time. The trigger distance ``D`` (ego front to the cutter's rear along the route) is chosen so
that a careless ego holding the lane speed limit reaches the cutter's rear shortly after the cutter has
entered its corridor (it collides), while a driver that reacts ``CUT_IN_REACTION_S`` after the cutter
starts moving and brakes at ``COMFORT_DECEL_MPS2`` down to the cutter's speed keeps clear
(:func:`braking_driver_clear`). Parameter sets for which no such ``D`` exists are redrawn, and a
:class:`ScenarioError` names the problem when none works.
"""

from __future__ import annotations

import math

import numpy as np

from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_M
from riskdistill.sim.actors import Behavior
from riskdistill.sim.roadmap import Lane
from riskdistill.sim.route import Path, smoothstep
from riskdistill.sim.scenarios.base import (
    Action,
    BuildContext,
    ScenarioError,
    ScenarioScript,
    ScenarioType,
    Trigger,
    register_scenario,
    release,
)
from riskdistill.sim.traffic import NO_GAP, idm_accel
from riskdistill.sim.world import SIM_DT_S, World
from riskdistill.types import Ability, ActorClass

COMFORT_DECEL_MPS2 = 4.5
CUT_IN_REACTION_S = 0.5
EGO_LENGTH_M, EGO_WIDTH_M = EGO_SIZE_M[0], EGO_SIZE_M[1]
EGO_HALF_LENGTH_M = 0.5 * EGO_SIZE_M[0]  # trigger route s is the ego centre's; distances are to its front
EGO_REAR_TO_FRONT_M = EGO_REAR_AXLE_TO_CENTER_M + EGO_HALF_LENGTH_M  # route s = 0 is the spawn rear axle
DEFAULT_COMFORT_DECEL_MPS2 = 3.0  # ActorTable default; enters IDM only through a (vanishing) gap term


# ----------------------------------------------------------------------------------------------------------
# Trigger actions


def set_column(actor: int, column: str, value: float | bool) -> Action:
    """Set one actor-table column of ``actor`` (e.g. ``ignore_actors``)."""

    def act(world: World) -> None:
        getattr(world.actors, column)[actor] = value

    return act


def after(script: ScenarioScript, delay_s: float, *actions: Action) -> Action:
    """Schedule ``actions`` ``delay_s`` seconds after this action runs (does not start the scenario)."""

    def act(world: World) -> None:
        script.triggers.append(Trigger(list(actions), time_s=world.time_s + delay_s, starts_scenario=False))

    return act


def brake_to_stop_then_resume(
    script: ScenarioScript, actor: int, decel_mps2: float, stand_s: float
) -> Action:
    """Brake ``actor`` at ``decel_mps2`` to a stop, wait ``stand_s``, then let it drive on."""

    def act(world: World) -> None:
        world.actors.brake_override[actor] = decel_mps2
        delay = float(world.actors.speed[actor]) / decel_mps2 + stand_s
        after(script, delay, set_column(actor, "brake_override", 0.0))(world)

    return act


# ----------------------------------------------------------------------------------------------------------
# Kinematics and geometry


def free_ride(
    v0_mps: float, desired_mps: float, max_accel_mps2: float, horizon_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(t, s, v)`` of a path vehicle on a free road, stepped exactly as :class:`World` steps it."""
    n = round(horizon_s / SIM_DT_S) + 1
    t = np.arange(n) * SIM_DT_S
    s, v = np.zeros(n), np.zeros(n)
    v[0] = v0_mps
    one = np.ones(1)
    for k in range(n - 1):
        acc = idm_accel(
            v[k] * one,
            desired_mps * one,
            NO_GAP * one,
            0.0 * one,
            max_accel_mps2 * one,
            DEFAULT_COMFORT_DECEL_MPS2 * one,
        )[0]
        nv = max(v[k] + float(acc) * SIM_DT_S, 0.0)
        s[k + 1] = s[k] + 0.5 * (v[k] + nv) * SIM_DT_S
        v[k + 1] = nv
    return t, s, v


def braking_driver_clear(
    t: np.ndarray,
    ego_front0_m: float,
    ego_v0_mps: float,
    ego_accel_mps2: float,
    ego_vmax_mps: float,
    adv_rear_m: np.ndarray,
    adv_speed_mps: np.ndarray,
    t_hazard_s: float,
    t_conflict_s: float,
    margin_m: float = 0.5,
) -> bool:
    """Does a driver that brakes at ``COMFORT_DECEL`` from ``t_hazard + CUT_IN_REACTION_S`` stay behind?

    Before braking it accelerates at ``ego_accel`` towards ``ego_vmax``; braking stops at the adversary's
    speed along the route. From ``t_conflict_s`` (the adversary in the ego's corridor) its front must stay
    ``margin_m`` behind the adversary's rear. All positions are route arc lengths.
    """
    f, ve = ego_front0_m, ego_v0_mps
    t_brake = t_hazard_s + CUT_IN_REACTION_S
    for k in range(1, len(t)):
        dt = t[k] - t[k - 1]
        if t[k] <= t_brake:
            nv = min(ve + ego_accel_mps2 * dt, ego_vmax_mps)
        else:
            nv = max(ve - COMFORT_DECEL_MPS2 * dt, min(float(adv_speed_mps[k]), ve))
        f += 0.5 * (ve + nv) * dt
        ve = nv
        if t[k] >= t_conflict_s and f > adv_rear_m[k] - margin_m:
            return False
    return True


def lane_change_points(
    from_lane: Lane,
    s_from: float,
    lead_m: float,
    change_m: float,
    to_lane: Lane,
    s_to_end: float | None = None,
) -> np.ndarray:
    """``from_lane`` from ``s_from`` for ``lead_m``, a smooth change over ``change_m`` onto ``to_lane``, then
    ``to_lane`` to ``s_to_end`` (default: its end). Points ``[P, 2]``."""
    s_a = np.arange(s_from, s_from + lead_m, 0.5)
    s_b = np.linspace(s_from + lead_m, s_from + lead_m + change_m, max(math.ceil(change_m / 0.5), 2) + 1)
    a_pts = from_lane.point_at(s_b)
    t0 = to_lane.project(a_pts[0])[0]
    b_pts = to_lane.point_at(t0 + (s_b - s_b[0]))
    w = smoothstep((s_b - s_b[0]) / change_m)[:, None]
    t_end = to_lane.length_m if s_to_end is None else s_to_end
    s_c = np.arange(t0 + change_m + 0.5, t_end, 0.5)
    pts = np.concatenate([from_lane.point_at(s_a), (1 - w) * a_pts + w * b_pts, to_lane.point_at(s_c)])
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-3])
    return pts[keep]


def _route_track(ctx: BuildContext, path: Path, s_path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Route arc length and lateral offset of the points at ``s_path`` of an actor path."""
    route = ctx.route
    assert route is not None
    pts = path.point_at(s_path)
    out = np.array([route.path.project(p) for p in pts])
    return out[:, 0], out[:, 1]


def _add_path_vehicle(
    ctx: BuildContext,
    path_id: int,
    s_m: float,
    cls: ActorClass,
    size: tuple[float, float, float],
    **flags: float | bool,
) -> int:
    return ctx.world.add_path_actor(
        cls, Behavior.VEHICLE, path_id, s_m, 0.0, 0.0, size_lwh=size, color=ctx.color_of(cls), **flags
    )


def _plan_standstill_cut_in(
    ctx: BuildContext,
    path: Path,
    s0_path: float,
    size: tuple[float, float, float],
    v_ref: float,
    accel: float,
    desired: float,
) -> tuple[float, float, float] | None:
    """``(D, t_conflict, t_collide)`` for a cutter released from rest at ``s0_path`` of ``path``, or None."""
    t, s, _ = free_ride(0.0, desired, accel, 12.0)
    s = s0_path + s
    n = max(int(np.searchsorted(s, path.length_m - 1.0)), 2)  # it leaves the scene at its path's end
    t, s = t[:n], s[:n]
    x, lat = _route_track(ctx, path, s)
    assert ctx.route is not None
    past = np.flatnonzero(x > ctx.route.length_m - 5.0)
    if len(past):
        t, x, lat = t[: max(past[0], 2)], x[: max(past[0], 2)], lat[: max(past[0], 2)]
    inside = np.flatnonzero(np.abs(lat) < 0.5 * (EGO_WIDTH_M + size[1]))
    if len(inside) == 0:
        return None
    k_i = int(inside[0])
    rear = x - x[0]  # cutter rear relative to where it was at the release
    u = np.gradient(x, t)
    fair = []
    for tau in np.arange(0.2, 1.21, 0.1):
        k = min(k_i + round(tau / SIM_DT_S), len(t) - 1)
        D = v_ref * t[k] - rear[k]
        if D > 5.0 and braking_driver_clear(t, -D, v_ref, 0.0, v_ref, rear, u, 0.0, t[k_i]):
            fair.append((float(D), float(t[k_i]), float(t[k])))
    return ctx.choice(fair) if fair else None


# ----------------------------------------------------------------------------------------------------------
# Scenario types


@register_scenario
class HardBreakRoute(ScenarioType):
    name = "HardBreakRoute"
    abilities = (Ability.EMERGENCY_BRAKE,)
    families = ("straight", "curve", "highway")
    summary = (
        "The vehicle the ego follows brakes hard (6-8 m/s^2) to a stop at a random time, then drives on."
    )
    background_density = 0.4
    hazard = "braking lead vehicle"

    def layout_params(self, rng: np.random.Generator, family: str) -> dict:
        params = super().layout_params(rng, family)
        if family == "highway":
            params["road_length_m"] = float(rng.uniform(260.0, 320.0))
            params["speed_limit_mps"] = float(rng.uniform(16.7, 22.2))
        elif family == "curve":
            params["curve_radius_m"] = float(rng.choice([-1.0, 1.0]) * rng.uniform(70.0, 140.0))
            params["curve_angle_deg"] = float(rng.uniform(25.0, 60.0))
        return params

    def populate(self, ctx: BuildContext) -> None:
        road = ctx.layout.roads["main"]
        lane_idx = int(ctx.rng.integers(len(road.forward_lane_ids)))
        lane = ctx.map.lanes[road.forward_lane_ids[lane_idx]]
        v_lim = lane.speed_limit_mps
        v0 = ctx.uniform(0.6, 0.85) * v_lim
        start_s = ctx.uniform(0.0, 15.0)
        end_s = min(lane.length_m, start_s + ctx.uniform(190.0, 220.0))
        route = ctx.set_route([lane.id], start_s, end_s, ego_speed_mps=v0)

        cls = ctx.vehicle_class()
        size = ctx.size_of(cls)
        gap0 = v0 * ctx.uniform(1.0, 2.0) + 4.0  # bumper to bumper
        s_lead = start_s + EGO_REAR_TO_FRONT_M + gap0 + 0.5 * size[0]  # lane s of the lead's centre
        desired = ctx.uniform(0.7, 0.9) * v_lim
        pid = ctx.lane_path([lane.id], start_s_m=s_lead - 5.0)
        lead = ctx.world.add_path_actor(
            cls, Behavior.VEHICLE, pid, 5.0, v0, desired, size_lwh=size, color=ctx.color_of(cls)
        )
        brake_t = ctx.uniform(4.0, 9.0)
        decel = ctx.uniform(6.0, 8.0)
        stand = ctx.uniform(1.5, 4.0)
        _, s_free, v_free = free_ride(v0, desired, 2.0, brake_t)
        lead_s_at_brake = float(s_free[-1]) + s_lead
        if lead_s_at_brake + v_free[-1] ** 2 / (2.0 * decel) > lane.length_m - 20.0:
            raise ScenarioError(
                f"HardBreakRoute: road too short for the lead vehicle (lane {lane.length_m:.0f} m)"
            )
        ctx.script.triggers.append(
            Trigger([brake_to_stop_then_resume(ctx.script, lead, decel, stand)], time_s=brake_t)
        )
        ctx.mark_hazard(lead, "braking lead vehicle")
        stop_route_s = ctx.route_s_of(lane.point_at(lead_s_at_brake + v_free[-1] ** 2 / (2.0 * decel)))
        ctx.scenario_end_s_m = min(stop_route_s + 10.0, route.length_m - 5.0)
        ctx.params.update(
            lead_id=lead,
            lead_class=cls.name.lower(),
            lane_index=lane_idx,
            initial_gap_m=round(gap0, 3),
            initial_speed_mps=round(v0, 3),
            lead_desired_speed_mps=round(desired, 3),
            brake_time_s=round(brake_t, 3),
            brake_decel_mps2=round(decel, 3),
            stand_still_s=round(stand, 3),
            reference_speed_mps=round(v_lim, 3),
        )


@register_scenario
class StaticCutIn(ScenarioType):
    name = "StaticCutIn"
    abilities = (Ability.EMERGENCY_BRAKE,)
    families = ("straight", "highway")
    summary = "A car in a queue of stopped vehicles in the next lane cuts into the ego lane just ahead."
    background_density = 0.4
    hazard = "vehicle cutting in from a queue"

    def layout_params(self, rng: np.random.Generator, family: str) -> dict:
        params = super().layout_params(rng, family)
        params["lanes_per_direction"] = int(rng.integers(2, 4))
        return params

    def populate(self, ctx: BuildContext) -> None:
        p = ctx.layout.params
        road = ctx.layout.roads["main"]
        fwd = road.forward_lane_ids
        if len(fwd) < 2:
            raise ScenarioError(f"StaticCutIn needs lanes_per_direction >= 2 (got {len(fwd)})")
        e = int(ctx.rng.integers(len(fwd)))
        side = ctx.choice([sd for sd, ok in (("left", e + 1 < len(fwd)), ("right", e > 0)) if ok])
        ego_lane = ctx.map.lanes[fwd[e]]
        adj = ctx.map.lanes[fwd[e + 1] if side == "left" else fwd[e - 1]]
        v_ref = ego_lane.speed_limit_mps
        start_s = ctx.uniform(0.0, 15.0)
        route = ctx.set_route(
            [ego_lane.id], start_s, ego_lane.length_m, ego_speed_mps=ctx.uniform(0.6, 0.9) * v_ref
        )
        plan = None
        for _ in range(20):
            cls = ctx.vehicle_class(allow_large=False)
            size = ctx.size_of(cls)
            x_cut = ctx.uniform(0.45, 0.62) * p.road_length_m
            change = ctx.uniform(10.0, 15.0)
            accel, desired = ctx.uniform(2.5, 3.5), ctx.uniform(5.0, 9.0)
            pts = lane_change_points(adj, x_cut - 6.0, 6.0 + ctx.uniform(0.3, 1.0), change, ego_lane)
            path = Path.from_points(pts)
            timing = _plan_standstill_cut_in(ctx, path, 6.0, size, v_ref, accel, desired)
            if timing is not None:
                plan = (cls, size, x_cut, change, accel, desired, path, timing)
                break
        if plan is None:
            raise ScenarioError(f"StaticCutIn: no fair cut-in timing at speed limit {v_ref:.1f} m/s")
        cls, size, x_cut, change, accel, desired, path, (D, t_conf, t_hit) = plan
        cutter = _add_path_vehicle(ctx, ctx.world.add_path(path), 6.0, cls, size, hold=True, max_accel=accel)
        ctx.mark_hazard(cutter, "cutting-in vehicle")

        # The queue: stopped vehicles behind the cutter and ahead of it, with room to pull out in front.
        queue_path = ctx.lane_path([adj.id])
        queue: list[int] = []
        edge = x_cut + 0.5 * size[0] + ctx.uniform(4.0, 7.0)
        for _ in range(int(ctx.rng.integers(1, 4))):
            q_cls = ctx.vehicle_class()
            q_size = ctx.size_of(q_cls)
            if edge + q_size[0] < adj.length_m - 5.0:
                queue.append(
                    _add_path_vehicle(ctx, queue_path, edge + 0.5 * q_size[0], q_cls, q_size, hold=True)
                )
            edge += q_size[0] + ctx.uniform(1.5, 3.5)
        edge = x_cut - 0.5 * size[0] - ctx.uniform(1.5, 3.5)
        for _ in range(int(ctx.rng.integers(1, 4))):
            q_cls = ctx.vehicle_class()
            q_size = ctx.size_of(q_cls)
            if edge - q_size[0] > 5.0:
                queue.append(
                    _add_path_vehicle(ctx, queue_path, edge - 0.5 * q_size[0], q_cls, q_size, hold=True)
                )
            edge -= q_size[0] + ctx.uniform(1.5, 3.5)

        rear_s = ctx.route_s_of(path.point_at(6.0)) - 0.5 * size[0]
        trigger_s = rear_s - D - EGO_HALF_LENGTH_M
        if trigger_s < 25.0:
            raise ScenarioError(
                f"StaticCutIn: cutter too close to the route start (trigger at {trigger_s:.1f} m)"
            )
        ctx.trigger(
            trigger_s,
            release(cutter, desired),
            set_column(cutter, "ignore_actors", True),  # it forces its way out of the queue
            after(ctx.script, t_hit + 2.0, set_column(cutter, "ignore_actors", False)),
        )
        ctx.scenario_end_s_m = min(rear_s + 30.0, route.length_m - 5.0)
        ctx.params.update(
            cutter_id=cutter,
            queue_ids=queue,
            side=side,
            ego_lane_index=e,
            cutter_class=cls.name.lower(),
            lane_change_m=round(change, 3),
            cutter_accel_mps2=round(accel, 3),
            cutter_speed_mps=round(desired, 3),
            trigger_distance_m=round(D, 3),
            trigger_s_m=round(trigger_s, 3),
            conflict_time_s=round(t_conf, 3),
            reference_speed_mps=round(v_ref, 3),
        )


@register_scenario
class ParkingCutIn(ScenarioType):
    name = "ParkingCutIn"
    abilities = (Ability.EMERGENCY_BRAKE,)
    families = ("straight", "curve")
    summary = "A car parked on the right pulls out of its parking space into the ego lane just ahead."
    background_density = 0.35
    hazard = "car pulling out of a parking space"

    def layout_params(self, rng: np.random.Generator, family: str) -> dict:
        params = super().layout_params(rng, family)
        params["parking"] = True
        params["speed_limit_mps"] = float(rng.uniform(9.7, 13.9))
        if family == "curve":
            params["curve_radius_m"] = float(rng.choice([-1.0, 1.0]) * rng.uniform(70.0, 140.0))
            params["curve_angle_deg"] = float(rng.uniform(25.0, 60.0))
        return params

    def populate(self, ctx: BuildContext) -> None:
        road = ctx.layout.roads["main"]
        if road.parking_forward_lane_id is None:
            raise ScenarioError("ParkingCutIn needs kerbside parking (layout parking=True)")
        m = ctx.map
        lane = m.lanes[road.forward_lane_ids[0]]
        park = m.lanes[road.parking_forward_lane_id]
        v_ref = lane.speed_limit_mps
        start_s = ctx.uniform(0.0, 15.0)
        route = ctx.set_route([lane.id], start_s, lane.length_m, ego_speed_mps=ctx.uniform(0.5, 0.9) * v_ref)
        cw_s = [park.project(m.crosswalks[c].polygon.mean(axis=0))[0] for c in road.crosswalk_ids]
        plan = None
        for _ in range(20):
            cls = ctx.vehicle_class(allow_large=False)
            size = ctx.size_of(cls)
            x_car = ctx.uniform(80.0, park.length_m - 70.0)  # parking-lane s of the car's centre
            if any(abs(x_car - c) < 30.0 for c in cw_s):
                continue
            change = ctx.uniform(9.0, 14.0)
            accel, desired = ctx.uniform(2.0, 3.0), ctx.uniform(5.0, 8.0)
            pts = lane_change_points(park, x_car - 6.0, 6.0 + ctx.uniform(0.3, 1.0), change, lane)
            path = Path.from_points(pts)
            timing = _plan_standstill_cut_in(ctx, path, 6.0, size, v_ref, accel, desired)
            if timing is not None:
                plan = (cls, size, x_car, change, accel, desired, path, timing)
                break
        if plan is None:
            raise ScenarioError(f"ParkingCutIn: no fair pull-out timing at speed limit {v_ref:.1f} m/s")
        cls, size, x_car, change, accel, desired, path, (D, t_conf, _) = plan
        cutter = _add_path_vehicle(ctx, ctx.world.add_path(path), 6.0, cls, size, hold=True, max_accel=accel)
        ctx.mark_hazard(cutter, "cutting-in vehicle")

        # Parked neighbours: a row behind it, and, after the room it needs to pull out, a few ahead.
        parked: list[int] = []
        edge = x_car - 0.5 * size[0] - ctx.uniform(0.8, 2.5)
        for _ in range(int(ctx.rng.integers(1, 4))):
            edge = self._park(ctx, park, edge, -1, parked) - ctx.uniform(0.8, 2.5)
        edge = x_car + 0.5 * size[0] + 0.9 * change + ctx.uniform(2.0, 6.0)
        for _ in range(int(ctx.rng.integers(0, 3))):
            edge = self._park(ctx, park, edge, +1, parked) + ctx.uniform(0.8, 2.5)

        rear_s = ctx.route_s_of(path.point_at(6.0)) - 0.5 * size[0]
        trigger_s = rear_s - D - EGO_HALF_LENGTH_M
        if trigger_s < 25.0:
            raise ScenarioError(
                f"ParkingCutIn: parked car too close to the route start (trigger at {trigger_s:.1f} m)"
            )
        ctx.trigger(trigger_s, release(cutter, desired))
        ctx.scenario_end_s_m = min(rear_s + 30.0, route.length_m - 5.0)
        ctx.params.update(
            cutter_id=cutter,
            parked_ids=parked,
            cutter_class=cls.name.lower(),
            lane_change_m=round(change, 3),
            cutter_accel_mps2=round(accel, 3),
            cutter_speed_mps=round(desired, 3),
            trigger_distance_m=round(D, 3),
            trigger_s_m=round(trigger_s, 3),
            conflict_time_s=round(t_conf, 3),
            reference_speed_mps=round(v_ref, 3),
        )

    @staticmethod
    def _park(ctx: BuildContext, lane: Lane, edge: float, direction: int, out: list[int]) -> float:
        """Park a car with a bumper at ``edge`` extending in ``direction`` (+1 downstream); return the far
        bumper's arc length."""
        cls = ctx.vehicle_class(allow_large=False)
        size = ctx.size_of(cls)
        mid = edge + direction * 0.5 * size[0]
        if 1.0 < mid < lane.length_m - 1.0:
            xy = lane.point_at(mid)
            out.append(
                ctx.world.actors.add(
                    cls,
                    Behavior.STATIC,
                    float(xy[0]),
                    float(xy[1]),
                    float(lane.heading_at(mid)),
                    size,
                    color=ctx.color_of(cls),
                )
            )
        return mid + direction * 0.5 * size[0]


@register_scenario
class HighwayCutIn(ScenarioType):
    name = "HighwayCutIn"
    abilities = (Ability.MERGING,)
    families = ("highway",)
    summary = "A car accelerating on the on-ramp merges into the rightmost lane just ahead of the ego."
    background_density = 0.35
    hazard = "merging vehicle"

    def layout_params(self, rng: np.random.Generator, family: str) -> dict:
        params = super().layout_params(rng, family)
        params["road_length_m"] = float(rng.uniform(280.0, 340.0))
        params["speed_limit_mps"] = float(rng.uniform(19.4, 25.0))
        return params

    def populate(self, ctx: BuildContext) -> None:
        roads = ctx.layout.roads
        if "ramp" not in roads:
            raise ScenarioError("HighwayCutIn needs the highway layout family (an on-ramp)")
        m = ctx.map
        main0 = m.lanes[roads["main"].forward_lane_ids[0]]
        approach, accel_lane = (m.lanes[i] for i in roads["ramp"].forward_lane_ids)
        acc_start = main0.project(accel_lane.centerline[0])[0]
        v_lim = main0.speed_limit_mps
        start_s = ctx.uniform(5.0, 25.0)
        if acc_start < start_s + 30.0:
            raise ScenarioError(
                f"HighwayCutIn: road too short, the on-ramp starts {acc_start:.0f} m along the road"
            )
        end_s = min(main0.length_m, start_s + ctx.uniform(190.0, 220.0))
        ego_v0 = ctx.uniform(0.6, 0.85) * v_lim
        route_len = ctx.set_route([main0.id], start_s, end_s, ego_speed_mps=ego_v0).length_m
        # Reference ego: accelerates at 3 m/s^2 to the speed limit (faster than a careful driver would).
        t = np.arange(0.0, 25.0 + 1e-9, SIM_DT_S)
        v_e = np.minimum(ego_v0 + 3.0 * t, v_lim)
        f_e = EGO_REAR_TO_FRONT_M + np.concatenate([[0.0], np.cumsum(0.5 * (v_e[1:] + v_e[:-1]) * SIM_DT_S)])

        plan = None
        for _ in range(30):
            cls = ctx.vehicle_class(allow_large=False)
            size = ctx.size_of(cls)
            change = ctx.uniform(30.0, 50.0)
            s_lc = ctx.uniform(10.0, max(accel_lane.length_m - change - 10.0, 10.5))
            pts = np.concatenate(
                [approach.centerline[:-1], lane_change_points(accel_lane, 0.0, s_lc, change, main0)]
            )
            path = Path.from_points(pts)
            v_m0, desired = ctx.uniform(0.5, 0.7) * v_lim, ctx.uniform(0.75, 0.9) * v_lim
            m_accel = ctx.uniform(1.5, 2.5)
            _, s_m, v_m = free_ride(v_m0, desired, m_accel, 25.0)
            sig = np.arange(0.0, path.length_m, 0.5)
            x_sig, lat_sig = _route_track(ctx, path, sig)
            inside = np.flatnonzero((np.abs(lat_sig) < 0.5 * (EGO_WIDTH_M + size[1])) & (x_sig > 1.0))
            if len(inside) == 0:
                continue
            sig_i = float(sig[inside[0]])
            sig_lc = approach.length_m + s_lc  # where the lateral move starts
            x_lc = float(np.interp(sig_lc, sig, x_sig))
            for gap in ctx.rng.permutation(np.arange(4.0, 20.01, 1.0)):
                # The reference ego's front is ``gap`` behind the merger's rear when its lateral move starts.
                k_lc = int(np.searchsorted(f_e, x_lc - 0.5 * size[0] - gap))
                if k_lc >= len(t) - 1 or k_lc < 10:
                    continue
                sig0 = sig_lc - float(s_m[k_lc])
                k_i = int(np.searchsorted(sig0 + s_m, sig_i))
                if sig0 < 5.0 or k_i >= len(t) - 1:
                    continue
                x_t = np.interp(sig0 + s_m, sig, x_sig)
                # Check until it leaves its path or passes the end of the ego route.
                n = int(np.searchsorted(sig0 + s_m, path.length_m - 1.0))
                beyond = np.flatnonzero((x_t > route_len - 5.0) & (np.arange(len(x_t)) > k_i))
                n = max(min(n, int(beyond[0]) if len(beyond) else n), k_i + 2)
                x_t = x_t[:n]
                rear = x_t - 0.5 * size[0]
                u = np.gradient(x_t, t[:n])
                if braking_driver_clear(t[:n], f_e[0], ego_v0, 3.0, v_lim, rear, u, t[k_lc], t[k_i]):
                    plan = (
                        cls,
                        size,
                        change,
                        s_lc,
                        path,
                        v_m0,
                        desired,
                        m_accel,
                        float(gap),
                        sig0,
                        k_lc,
                        k_i,
                        v_m[k_i],
                    )
                    break
            if plan is not None:
                break
        if plan is None:
            raise ScenarioError(f"HighwayCutIn: no fair merge timing at speed limit {v_lim:.1f} m/s")
        cls, size, change, s_lc, path, v_m0, desired, m_accel, gap, sig0, k_lc, k_i, v_at = plan
        t_lc, t_i = float(t[k_lc]), float(t[k_i])
        merger = ctx.world.add_path_actor(
            cls, Behavior.VEHICLE, ctx.world.add_path(path), sig0, v_m0, desired, size_lwh=size,
            color=ctx.color_of(cls), ignore_actors=True, max_accel=m_accel,
        )  # fmt: skip
        ctx.mark_hazard(merger, "merging vehicle")
        # Back to normal car-following once it is in the lane (it does not yield while merging).
        t_done = t_i + change / max(float(v_at), 1.0)
        ctx.script.triggers.append(Trigger([], time_s=t_lc))  # the scenario starts with the lateral move
        ctx.script.triggers.append(
            Trigger([set_column(merger, "ignore_actors", False)], time_s=t_done + 1.0, starts_scenario=False)
        )
        merge_end = approach.length_m + s_lc + change  # merger path s where it is fully in lane 0
        ctx.scenario_end_s_m = ctx.route_s_of(path.point_at(merge_end)) + 20.0
        ctx.params.update(
            merger_id=merger,
            merger_class=cls.name.lower(),
            merger_initial_speed_mps=round(v_m0, 3),
            merger_desired_speed_mps=round(desired, 3),
            merger_accel_mps2=round(m_accel, 3),
            merge_start_on_accel_lane_m=round(s_lc, 3),
            lane_change_m=round(change, 3),
            merge_start_gap_m=gap,  # reference ego front -> merger rear when it starts moving over
            lane_change_start_time_s=round(t_lc, 3),
            corridor_entry_time_s=round(t_i, 3),
            ego_initial_speed_mps=round(ego_v0, 3),
            reference_speed_mps=round(v_lim, 3),
        )
