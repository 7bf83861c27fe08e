"""Give way to an emergency vehicle (Bench2Drive's ``YieldToEmergencyVehicle``).

Bench2Drive spawns the emergency vehicle (EV) ``distance`` metres (26-27 in its routes) behind the scenario's
trigger point, in the ego's lane, with its sirens on, and drives it at the ego's speed + 25 km/h; the lane is
cleared of background traffic. The scenario ends 10 s after the EV came within 50 m of the ego, or once the EV
got in front of the ego and drove 50 m; the ego fails (``yield_emergency_vehicle_infractions``, penalty 0.7)
if it is still ahead of the EV then (``sim.criteria.YieldToEmergencyVehicle``). The ego has to move over to a
neighbouring lane of the same direction and let the EV pass.

Here: a highway of 2-3 lanes; the ego starts in a lane with a neighbour on its right; the EV starts 25-35 m
behind it (centre to centre) at the ego's start speed + 25 km/h, desires the speed limit + 25 km/h, and
follows the ego with IDM (it never rams it). The trigger is the start of the route.
"""

from __future__ import annotations

import numpy as np

from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M
from riskdistill.sim.actors import Behavior
from riskdistill.sim.scenarios.base import BuildContext, ScenarioError, ScenarioType, register_scenario
from riskdistill.types import Ability, ActorClass

EV_SPEED_INCREMENT_MPS = 25.0 / 3.6  # Bench2Drive: _speed_increment = 25 km/h
EV_MAX_ACCEL_MPS2 = 3.5


@register_scenario
class YieldToEmergencyVehicle(ScenarioType):
    name = "YieldToEmergencyVehicle"
    abilities = (Ability.GIVE_WAY,)
    families = ("highway",)
    summary = (
        "An emergency vehicle comes up from behind in the ego's lane, 25 km/h faster; the ego must move over "
        "and let it pass within 10 s."
    )
    background_density = 0.25
    hazard = "emergency vehicle coming up from behind"

    def layout_params(self, rng: np.random.Generator, family: str) -> dict:
        params = super().layout_params(rng, family)
        params["road_length_m"] = float(rng.uniform(320.0, 380.0))
        params["speed_limit_mps"] = float(rng.uniform(16.7, 22.2))
        return params

    def populate(self, ctx: BuildContext) -> None:
        road = ctx.layout.roads["main"]
        lanes = road.forward_lane_ids
        if len(lanes) < 2:
            raise ScenarioError("YieldToEmergencyVehicle needs a road with at least two lanes per direction")
        lane_idx = int(ctx.rng.integers(1, len(lanes)))  # a lane with a neighbour on its right
        lane = ctx.map.lanes[lanes[lane_idx]]
        v_lim = lane.speed_limit_mps
        start_s = ctx.uniform(45.0, 60.0)
        end_s = min(lane.length_m - 10.0, start_s + ctx.uniform(220.0, 260.0))
        ego_v0 = ctx.uniform(0.6, 0.85) * v_lim
        ctx.set_route([lane.id], start_s, end_s, ego_speed_mps=ego_v0)

        cls = ActorClass.EMERGENCY_VEHICLE
        size = ctx.size_of(cls)
        gap = ctx.uniform(25.0, 35.0)  # EV centre behind the ego centre
        s_ev = start_s + EGO_REAR_AXLE_TO_CENTER_M - gap
        if s_ev < 0.5 * size[0] + 1.0:
            raise ScenarioError(f"YieldToEmergencyVehicle: no room behind the ego (EV at {s_ev:.1f} m)")
        pid = ctx.lane_path([lane.id])
        ev = ctx.world.add_path_actor(
            cls,
            Behavior.VEHICLE,
            pid,
            s_ev,
            ego_v0 + EV_SPEED_INCREMENT_MPS,
            v_lim + EV_SPEED_INCREMENT_MPS,
            size_lwh=size,
            color=ctx.color_of(cls),
            max_accel=EV_MAX_ACCEL_MPS2,
        )
        ctx.emergency_vehicle_id = ev
        ctx.mark_hazard(ev, "emergency vehicle coming up from behind")
        ctx.keep_clear_lane_ids = {lane.id}  # RemoveRoadLane: no background traffic in the EV's lane
        ctx.trigger(0.5)  # the scenario (and the yield test) starts with the route
        ctx.params.update(
            emergency_vehicle_id=ev,
            lane_index=lane_idx,
            initial_gap_m=round(gap, 3),
            initial_speed_mps=round(ego_v0, 3),
            ev_desired_speed_mps=round(v_lim + EV_SPEED_INCREMENT_MPS, 3),
        )
