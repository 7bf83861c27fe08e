"""The world: a road map, traffic lights, and the actor table, advanced at 10 Hz.

:class:`World` knows physics and traffic rules, nothing about scoring or agents. The closed-loop
environment (:mod:`riskdistill.sim.env`) wraps it with a route, a driver and infraction checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskdistill.contracts.agent import Controls
from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_M
from riskdistill.geometry import box_corners_2d, boxes_overlap_matrix
from riskdistill.sim.actors import ActorTable, Behavior
from riskdistill.sim.roadmap import JunctionControl, RoadMap
from riskdistill.sim.route import Path
from riskdistill.sim.traffic import NO_GAP, PathBank, compute_path_gaps, idm_accel
from riskdistill.sim.vehicle import BicycleState, VehicleParams, step_bicycle
from riskdistill.types import ActorClass, LightState

SIM_DT_S = 0.1
STOP_SIGN_WAIT_S = 1.0
GAP_STEP_M = 1.0
ONCOMING_COURTESY_M = 15.0

EGO_COLOR = (230, 230, 230)
DESPAWN_XY_M = 1.0e5  # where actors that left the scene are parked
CONTACT_SEARCH_M = 2.0  # beyond the ego's bounding circle, layout objects (poles) cannot touch it


def _unit(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw), np.sin(yaw)])


@dataclass(frozen=True)
class EgoContact:
    """The ego touched something during the last step (found before the collision response).

    ``other`` is the actor index, or the index in ``RoadMap.layout_obstacles`` when ``layout`` is True;
    ``ego_speed_mps`` is the ego's speed at the contact, before the response stopped or slowed it.
    """

    other: int
    layout: bool
    ego_speed_mps: float


@dataclass
class _PreStep:
    """What the collision response restores: the ego state and every actor's pose before the step."""

    ego: BicycleState
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    s: np.ndarray
    speed: np.ndarray


class World:
    """Ground-truth state of one simulated scene."""

    def __init__(self, road_map: RoadMap, dt_s: float = SIM_DT_S, ego_params: VehicleParams | None = None):
        self.map = road_map
        self.dt_s = dt_s
        self.time_s = 0.0
        self.step_count = 0
        self.actors = ActorTable()
        self.paths = PathBank()
        self.ego_params = ego_params or VehicleParams()
        self.ego: BicycleState | None = None
        self.ego_accel_mps2 = 0.0
        self.ego_yaw_rate_radps = 0.0
        self.ego_contacts: list[EgoContact] = []  # contacts of the last step (see ``_respond_to_contacts``)
        self._layout_boxes: tuple[np.ndarray, np.ndarray] | None = None  # pole centres and corners, cached
        self.light_offset_s: dict[int, float] = {j: 0.0 for j in road_map.junctions}
        self.light_override: dict[int, LightState] = {}
        self._light_ids = np.array(sorted(road_map.traffic_lights), dtype=np.int64)
        self._stop_ids = sorted(road_map.stop_lines)
        self._stop_index = {sid: k for k, sid in enumerate(self._stop_ids)}
        self._path_stops: list[list[tuple[float, int]]] = []  # per path: (s on path, stop-line index)
        self._stops_packed: tuple[np.ndarray, np.ndarray] | None = None

    # ----------------------------------------------------------------------------- construction
    def add_path(self, path: Path | np.ndarray) -> int:
        if not isinstance(path, Path):
            path = Path.from_points(path)
        self._path_stops.append(self._find_stop_lines(path))
        self._stops_packed = None
        return self.paths.add(path)

    def _find_stop_lines(self, path: Path) -> list[tuple[float, int]]:
        found = []
        for sid in self._stop_ids:
            sl = self.map.stop_lines[sid]
            lane = self.map.lanes[sl.lane_id]
            p = lane.point_at(sl.s_m)
            s_on, lat = path.project(p)
            if abs(lat) < 1.0 and 0.5 < s_on < path.length_m - 0.5:
                dyaw = np.angle(np.exp(1j * (float(path.heading_at(s_on)) - float(lane.heading_at(sl.s_m)))))
                if abs(dyaw) < 0.5:
                    found.append((s_on, self._stop_index[sid]))
        return sorted(found)

    def spawn_ego(self, x_rear_m: float, y_rear_m: float, yaw_rad: float, speed_mps: float = 0.0) -> int:
        if self.actors.n != 0:
            raise RuntimeError("the ego must be the first actor (index 0)")
        self.ego = BicycleState(x_rear_m, y_rear_m, yaw_rad, speed_mps)
        cx = x_rear_m + EGO_REAR_AXLE_TO_CENTER_M * np.cos(yaw_rad)
        cy = y_rear_m + EGO_REAR_AXLE_TO_CENTER_M * np.sin(yaw_rad)
        return self.actors.add(
            ActorClass.CAR, Behavior.EGO, cx, cy, yaw_rad, EGO_SIZE_M, speed=speed_mps, color=EGO_COLOR
        )

    def add_path_actor(
        self,
        cls: ActorClass,
        behavior: Behavior,
        path_id: int,
        s_m: float,
        speed_mps: float,
        desired_speed_mps: float,
        size_lwh: tuple[float, float, float] | None = None,
        color: tuple[int, int, int] = (128, 128, 128),
        **flags: float | bool,
    ) -> int:
        """Place a vehicle or walker on a path at arc length ``s_m`` (its box centre)."""
        i = self.actors.add(
            cls,
            behavior,
            0.0,
            0.0,
            0.0,
            size_lwh,
            speed=speed_mps,
            desired_speed=desired_speed_mps,
            path_id=path_id,
            s=s_m,
            color=color,
            **flags,
        )
        self._place_on_paths(np.array([i]))
        return i

    def add_static(
        self,
        cls: ActorClass,
        x_m: float,
        y_m: float,
        yaw_rad: float,
        size_lwh: tuple[float, float, float] | None = None,
        color: tuple[int, int, int] = (128, 128, 128),
    ) -> int:
        return self.actors.add(cls, Behavior.STATIC, x_m, y_m, yaw_rad, size_lwh, color=color)

    def set_path(self, actor: int, path_id: int, s_m: float | None = None) -> None:
        """Give an actor a new path (e.g. a lane change); by default continue from its projection."""
        if s_m is None:
            s_m, _ = self.paths.paths[path_id].project(np.array([self.actors.x[actor], self.actors.y[actor]]))
        self.actors.path_id[actor] = path_id
        self.actors.s[actor] = s_m

    # ----------------------------------------------------------------------------- traffic lights
    def light_state(self, light_id: int) -> LightState:
        if light_id in self.light_override:
            return self.light_override[light_id]
        light = self.map.traffic_lights[light_id]
        junction = self.map.junctions[light.junction_id]
        period = junction.green_s + junction.yellow_s + junction.all_red_s
        cycle = period * junction.n_phase_groups
        t = (self.time_s + self.light_offset_s.get(junction.id, 0.0)) % cycle
        t_group = t - light.phase_group * period
        if 0.0 <= t_group < junction.green_s:
            return LightState.GREEN
        if junction.green_s <= t_group < junction.green_s + junction.yellow_s:
            return LightState.YELLOW
        return LightState.RED

    def light_states(self) -> dict[int, LightState]:
        return {int(lid): self.light_state(int(lid)) for lid in self._light_ids}

    def stop_line_must_stop(self) -> np.ndarray:
        """``[n_stop_lines]`` bool (``_stop_ids`` order): red/yellow lights, stop signs, yield lines."""
        out = np.zeros(len(self._stop_ids), dtype=bool)
        for k, sid in enumerate(self._stop_ids):
            sl = self.map.stop_lines[sid]
            if sl.traffic_light_id is not None:
                out[k] = self.light_state(sl.traffic_light_id) != LightState.GREEN
            else:
                out[k] = True  # stop sign or yield line: served per vehicle
        return out

    def stop_line_is_light(self) -> np.ndarray:
        return np.array(
            [self.map.stop_lines[s].traffic_light_id is not None for s in self._stop_ids], dtype=bool
        )

    def junction_control_of_stop(self, k: int) -> JunctionControl | None:
        sl = self.map.stop_lines[self._stop_ids[k]]
        lane = self.map.lanes[sl.lane_id]
        for succ in lane.successors:
            jid = self.map.lanes[succ].junction_id
            if jid is not None:
                return self.map.junctions[jid].control
        return None

    def _packed_stops(self) -> tuple[np.ndarray, np.ndarray]:
        if self._stops_packed is None:
            n = max(len(self._path_stops), 1)
            m = max((len(p) for p in self._path_stops), default=0) or 1
            s = np.full((n, m), NO_GAP)
            idx = np.full((n, m), -1, dtype=np.int64)
            for p, stops in enumerate(self._path_stops):
                for k, (s_on, si) in enumerate(stops):
                    s[p, k], idx[p, k] = s_on, si
            self._stops_packed = (s, idx)
        return self._stops_packed

    # ----------------------------------------------------------------------------- stepping
    def step(self, ego_controls: Controls | None = None) -> None:
        """Advance by one tick: background actors, then the ego (if it exists)."""
        a = self.actors
        n = a.n
        beh = a.behavior[:n]
        movers = np.flatnonzero(beh == Behavior.VEHICLE)
        walkers = np.flatnonzero(beh == Behavior.WALKER)
        dt = self.dt_s
        pre = None
        if self.ego is not None:
            pre = _PreStep(self.ego, a.x[:n].copy(), a.y[:n].copy(), a.yaw[:n].copy(), a.s[:n].copy(),
                           a.speed[:n].copy())  # fmt: skip

        if len(movers):
            self._step_vehicles(movers)
        if len(walkers):
            moving = walkers[~a.hold[walkers]]
            a.s[moving] += np.maximum(a.speed[moving], 0.0) * dt
            lens = np.array([self.paths.paths[p].length_m for p in a.path_id[moving]])
            done = a.s[moving] >= lens
            a.s[moving] = np.minimum(a.s[moving], lens)
            a.speed[moving[done]] = 0.0
            a.speed[walkers[a.hold[walkers]]] = 0.0
            self._place_on_paths(walkers)

        if self.ego is not None:
            controls = ego_controls if ego_controls is not None else Controls(brake=1.0)
            self.ego, self.ego_accel_mps2, self.ego_yaw_rate_radps = step_bicycle(
                self.ego, controls, dt, self.ego_params
            )
            e = self.ego
            a.x[0] = e.x_m + EGO_REAR_AXLE_TO_CENTER_M * np.cos(e.yaw_rad)
            a.y[0] = e.y_m + EGO_REAR_AXLE_TO_CENTER_M * np.sin(e.yaw_rad)
            a.yaw[0], a.speed[0], a.accel[0] = e.yaw_rad, e.speed_mps, self.ego_accel_mps2
            self.ego_contacts = self._respond_to_contacts(pre)

        self.time_s = round(self.time_s + dt, 9)
        self.step_count += 1

    def _step_vehicles(self, movers: np.ndarray) -> None:
        a = self.actors
        n = a.n
        dt = self.dt_s
        pts, npts, ds = self.paths.packed()
        speed = a.speed[:n]
        lookahead = np.clip(3.0 * speed + 12.0, 15.0, 60.0)
        gap, blocker, lead_v, _ = compute_path_gaps(
            movers,
            a.path_id[:n],
            a.s[:n],
            a.x[:n],
            a.y[:n],
            a.yaw[:n],
            a.length[:n],
            a.width[:n],
            speed,
            np.ones(n, dtype=np.bool_),
            pts,
            npts,
            ds,
            lookahead,
            GAP_STEP_M,
        )
        g = gap[movers]
        lv = lead_v[movers]
        # Courtesy: facing the ego head-on in their lane (it is overtaking something), drivers stop
        # early and leave it room to get back into its own lane.
        if self.ego is not None:
            facing_ego = (blocker[movers] == 0) & (np.cos(a.yaw[movers] - a.yaw[0]) < -0.5)
            g = np.where(facing_ego, np.maximum(g - ONCOMING_COURTESY_M, 0.0), g)
        ignore = a.ignore_actors[movers]
        g = np.where(ignore, NO_GAP, g)
        lv = np.where(ignore, 0.0, lv)

        # Stop lines ahead on each mover's path.
        stop_s, stop_idx = self._packed_stops()
        if len(self._stop_ids):
            must = self.stop_line_must_stop()
            is_light = self.stop_line_is_light()
            pid = a.path_id[movers]
            front = a.s[movers] + 0.5 * a.length[movers]
            ss = stop_s[pid]  # [M, K]
            si = stop_idx[pid]
            valid = si >= 0
            si_c = np.where(valid, si, 0)
            dist = ss - front[:, None]
            stop_ids = np.asarray(self._stop_ids)[si_c]
            served = a.stopped_at_line[movers][:, None] == stop_ids
            v = speed[movers][:, None]
            lights = is_light[si_c]
            state_yellow = np.zeros_like(valid)
            if lights.any():
                yl = np.array(
                    [
                        self.map.stop_lines[s].traffic_light_id is not None
                        and self.light_state(self.map.stop_lines[s].traffic_light_id) == LightState.YELLOW
                        for s in self._stop_ids
                    ]
                )
                state_yellow = yl[si_c]
            cannot_stop = dist < v * v / (2.0 * 3.5)
            active = valid & must[si_c] & (dist > -0.5)
            active &= ~(lights & a.ignore_lights[movers][:, None])
            active &= ~((~lights) & served)
            active &= ~(state_yellow & cannot_stop)
            line_gap = np.where(active, np.maximum(dist, 0.0), NO_GAP).min(axis=1)
            # Serve stop signs / yield lines: come to a halt close to the line.
            near = active & ~lights & (dist < 3.0) & (v < 0.2)
            rows = np.flatnonzero(near.any(axis=1))
            for r in rows:
                i = movers[r]
                a.stop_timer[i] += dt
                if a.stop_timer[i] >= STOP_SIGN_WAIT_S:
                    k = int(np.argmax(near[r]))
                    a.stopped_at_line[i] = stop_ids[r, k]
                    a.stop_timer[i] = 0.0
            use_line = line_gap < g
            g = np.where(use_line, line_gap, g)
            lv = np.where(use_line, 0.0, lv)

        acc = idm_accel(
            speed[movers], a.desired_speed[movers], g, lv, a.max_accel[movers], a.comfort_decel[movers]
        )
        override = a.brake_override[movers] > 0
        acc = np.where(override, -a.brake_override[movers], acc)
        held = a.hold[movers]
        new_v = np.where(held, 0.0, np.maximum(speed[movers] + acc * dt, 0.0))
        a.accel[movers] = (new_v - speed[movers]) / dt
        a.s[movers] += 0.5 * (speed[movers] + new_v) * dt * (~held)
        a.speed[movers] = new_v
        a.wait_timer[movers] = np.where(new_v < 0.1, a.wait_timer[movers] + dt, 0.0)
        self._place_on_paths(movers)
        # Vehicles that reach the end of their path leave the scene.
        lens = self.paths.lengths()[a.path_id[movers]]
        gone = movers[a.s[movers] >= lens - 0.5]
        if len(gone):
            a.behavior[gone] = Behavior.STATIC
            a.speed[gone] = 0.0
            a.x[gone] = DESPAWN_XY_M + 10.0 * gone
            a.y[gone] = DESPAWN_XY_M

    def _place_on_paths(self, idx: np.ndarray) -> None:
        """Set pose from path and arc length. Vehicles: both axles on the path (kinematic bicycle)."""
        a = self.actors
        pid = a.path_id[idx]
        s = a.s[idx]
        is_vehicle = a.behavior[idx] == Behavior.VEHICLE
        half_wb = np.where(is_vehicle, 0.3 * a.length[idx], 0.25)
        front = self.paths.interp(pid, s + half_wb)
        rear = self.paths.interp(pid, s - half_wb)
        centre = 0.5 * (front + rear)
        d = front - rear
        a.x[idx], a.y[idx] = centre[:, 0], centre[:, 1]
        a.yaw[idx] = np.arctan2(d[:, 1], d[:, 0])

    # ----------------------------------------------------------------------------- collisions
    def _ego_corners(self) -> np.ndarray:
        a = self.actors
        return box_corners_2d(np.array([[a.x[0], a.y[0]]]), a.yaw[:1], a.length[:1], a.width[:1])

    def _near_ego(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Indices (>= 1) of actors at ``x, y`` whose bounding circle meets the ego's (a cheap pre-test)."""
        a = self.actors
        n = len(x)
        radius = 0.5 * np.hypot(a.length[:n], a.width[:n])
        near = (x[1:] - a.x[0]) ** 2 + (y[1:] - a.y[0]) ** 2 < (radius[1:] + radius[0]) ** 2
        return np.flatnonzero(near) + 1

    def _touching(self, ego_corners: np.ndarray, x: np.ndarray, y: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        """Indices (>= 1) of actors whose box at poses ``x, y, yaw`` (all actors) overlaps ``ego_corners``."""
        a = self.actors
        n = len(x)
        if n <= 1:
            return np.zeros(0, dtype=np.int64)
        idx = self._near_ego(x, y)
        if not len(idx):
            return idx
        corners = box_corners_2d(np.stack([x[idx], y[idx]], axis=1), yaw[idx], a.length[idx], a.width[idx])
        return idx[boxes_overlap_matrix(ego_corners, corners)[0]]

    def _near_layout(self) -> np.ndarray:
        if self._layout_boxes is None:
            return np.flatnonzero([True] * len(self.map.layout_obstacles))  # first call: test all, cache
        a = self.actors
        reach = 0.5 * np.hypot(a.length[0], a.width[0]) + CONTACT_SEARCH_M
        return np.flatnonzero(((self._layout_boxes[0] - [a.x[0], a.y[0]]) ** 2).sum(axis=1) < reach**2)

    def _touching_layout(self, ego_corners: np.ndarray) -> list[int]:
        """Indices of the map's layout obstacles (poles) that overlap ``ego_corners``."""
        if self._layout_boxes is None:
            obs = self.map.layout_obstacles
            centres = np.array([ob.center for ob in obs]).reshape(-1, 2)
            yaw = np.array([ob.yaw for ob in obs])
            size = np.array([[ob.length_m, ob.width_m] for ob in obs]).reshape(-1, 2)
            self._layout_boxes = (centres, box_corners_2d(centres, yaw, size[:, 0], size[:, 1]))
        centres, corners = self._layout_boxes
        near = self._near_layout()
        if not len(near):
            return []
        return [int(k) for k in near[boxes_overlap_matrix(ego_corners, corners[near])[0]]]

    def _respond_to_contacts(self, pre: _PreStep) -> list[EgoContact]:
        """Find what the ego touches after this step, then make sure nothing passes through anything.

        * The ego drove into something (its new box overlaps the other's box from before the step: static
          actors, layout objects, or a vehicle it ran into): the ego goes back to its pose before the step and
          keeps only the other's speed along its heading (0 against anything standing).
        * A moving actor drove into the ego: it goes back to its place before the step, keeping only the
          ego's speed along its own heading.
        * Both moved into each other: both go back.
        A pair that already overlapped before the step stays as it is.
        """
        a = self.actors
        n = len(pre.x)
        if not len(self._near_ego(a.x[:n], a.y[:n])) and not len(self._near_layout()):
            return []
        ego_c = self._ego_corners()
        hit = self._touching(ego_c, a.x[:n], a.y[:n], a.yaw[:n])
        poles = self._touching_layout(ego_c)
        if not len(hit) and not poles:
            return []
        v_contact = float(self.ego.speed_mps)
        contacts = [EgoContact(int(j), False, v_contact) for j in hit]
        contacts += [EgoContact(k, True, v_contact) for k in poles]
        into = self._touching(ego_c, pre.x, pre.y, pre.yaw)
        ego_back = bool(len(into) or poles)
        if ego_back:
            heading = np.array([np.cos(pre.ego.yaw_rad), np.sin(pre.ego.yaw_rad)])
            along = [pre.speed[j] * float(_unit(pre.yaw[j]) @ heading) for j in into]
            v_keep = min([v_contact, *(max(v, 0.0) for v in along)] + ([0.0] if poles else []))
            self._put_ego_back(pre, v_keep)
        moving = (a.behavior[:n] == Behavior.VEHICLE) | (a.behavior[:n] == Behavior.WALKER)
        pushed = [
            int(j) for j in self._touching(self._ego_corners(), a.x[:n], a.y[:n], a.yaw[:n]) if moving[j]
        ]
        if pushed:
            e_vel = self.ego.speed_mps * _unit(self.ego.yaw_rad)
            for j in pushed:
                a.s[j] = pre.s[j]
                a.speed[j] = float(np.clip(e_vel @ _unit(pre.yaw[j]), 0.0, pre.speed[j]))
                a.accel[j] = (a.speed[j] - pre.speed[j]) / self.dt_s
                a.x[j], a.y[j], a.yaw[j] = pre.x[j], pre.y[j], pre.yaw[j]
            if not ego_back and len(self._touching(self._ego_corners(), a.x[:n], a.y[:n], a.yaw[:n])):
                self._put_ego_back(pre, 0.0)
        return contacts

    def _put_ego_back(self, pre: _PreStep, speed_mps: float) -> None:
        a = self.actors
        e = pre.ego
        self.ego = BicycleState(e.x_m, e.y_m, e.yaw_rad, float(speed_mps), self.ego.steer)
        self.ego_accel_mps2 = (float(speed_mps) - e.speed_mps) / self.dt_s
        self.ego_yaw_rate_radps = 0.0
        a.x[0], a.y[0], a.yaw[0] = pre.x[0], pre.y[0], pre.yaw[0]
        a.speed[0], a.accel[0] = speed_mps, self.ego_accel_mps2

    # ----------------------------------------------------------------------------- queries
    def ego_pose_rear(self) -> tuple[float, float, float]:
        if self.ego is None:
            raise RuntimeError("no ego spawned")
        return self.ego.x_m, self.ego.y_m, self.ego.yaw_rad
