"""Ego vehicle dynamics (kinematic bicycle at the rear axle) and the waypoint-tracking controller.

The controller plays the role of the PID controller Bench2Drive agents use: a plan of ego-frame
waypoints becomes throttle, steer and brake.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskdistill.contracts.agent import PLAN_DT_S, Controls


@dataclass(frozen=True)
class VehicleParams:
    wheelbase_m: float = 2.9
    max_steer_rad: float = 0.6
    max_accel_mps2: float = 3.5  # at full throttle, from standstill
    max_brake_mps2: float = 8.0  # at full brake
    drag_per_mps: float = 0.02  # throttle loses authority with speed (simple drag)
    max_speed_mps: float = 30.0
    max_steer_rate_per_s: float = 2.0  # steering command slew rate (normalised units / s)


@dataclass
class BicycleState:
    """Ego state at the rear axle, world frame."""

    x_m: float
    y_m: float
    yaw_rad: float
    speed_mps: float
    steer: float = 0.0  # the applied (slew-limited) steering in [-1, 1]


def step_bicycle(
    state: BicycleState, controls: Controls, dt_s: float, params: VehicleParams
) -> tuple[BicycleState, float, float]:
    """Advance the kinematic bicycle by ``dt_s``. Returns ``(new_state, accel_mps2, yaw_rate_radps)``."""
    c = controls.clipped()
    max_dsteer = params.max_steer_rate_per_s * dt_s
    steer = state.steer + float(np.clip(c.steer - state.steer, -max_dsteer, max_dsteer))
    v = state.speed_mps
    accel = c.throttle * params.max_accel_mps2 * max(0.0, 1.0 - params.drag_per_mps * v) - (
        c.brake * params.max_brake_mps2
    )
    if v <= 0.0 and accel < 0.0:
        accel = 0.0  # brakes hold the car; no reversing
    v_new = float(np.clip(v + accel * dt_s, 0.0, params.max_speed_mps))
    accel = (v_new - v) / dt_s
    delta = steer * params.max_steer_rad
    v_mid = 0.5 * (v + v_new)
    yaw_rate = v_mid * np.tan(delta) / params.wheelbase_m
    yaw_mid = state.yaw_rad + 0.5 * yaw_rate * dt_s
    x = state.x_m + v_mid * np.cos(yaw_mid) * dt_s
    y = state.y_m + v_mid * np.sin(yaw_mid) * dt_s
    yaw = float(np.angle(np.exp(1j * (state.yaw_rad + yaw_rate * dt_s))))
    return BicycleState(float(x), float(y), yaw, v_new, steer), float(accel), float(yaw_rate)


@dataclass
class WaypointController:
    """Tracks a plan of ego-frame waypoints: pure pursuit for steering, PI on speed for the pedals."""

    params: VehicleParams
    kp_speed: float = 0.6
    ki_speed: float = 0.1
    lookahead_min_m: float = 3.0
    lookahead_gain_s: float = 0.6
    brake_speed_threshold_mps: float = 0.3
    _integral: float = 0.0

    def reset(self) -> None:
        self._integral = 0.0

    def desired_speed(self, waypoints_ego: np.ndarray) -> float:
        """Speed the plan asks for: the mean speed over its first second."""
        pts = np.vstack([np.zeros((1, 2)), waypoints_ego[:2]])
        return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).mean() / PLAN_DT_S)

    def control(self, waypoints_ego: np.ndarray, speed_mps: float, dt_s: float) -> Controls:
        wp = np.asarray(waypoints_ego, dtype=np.float64)
        target_v = self.desired_speed(wp)
        # Longitudinal.
        if target_v < self.brake_speed_threshold_mps:
            self._integral = 0.0
            brake = 1.0 if speed_mps > 0.5 else 0.6
            throttle = 0.0
        else:
            err = target_v - speed_mps
            self._integral = float(np.clip(self._integral + err * dt_s, -5.0, 5.0))
            u = self.kp_speed * err + self.ki_speed * self._integral
            # Feed-forward against drag keeps a steady speed without a large integral.
            u += 0.05 * target_v * self.params.drag_per_mps * 10
            throttle = float(np.clip(u, 0.0, 0.8))
            brake = float(np.clip(-u, 0.0, 1.0)) if err < -0.5 else 0.0
        # Lateral: pure pursuit on the polyline through the origin and the waypoints.
        steer = self._pure_pursuit(wp, max(speed_mps, target_v))
        return Controls(throttle=throttle, steer=steer, brake=brake)

    def _pure_pursuit(self, wp: np.ndarray, speed_mps: float) -> float:
        poly = np.vstack([np.zeros((1, 2)), wp])
        seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        if s[-1] < 0.5:
            return 0.0
        ld = min(self.lookahead_min_m + self.lookahead_gain_s * speed_mps, s[-1])
        tx = float(np.interp(ld, s, poly[:, 0]))
        ty = float(np.interp(ld, s, poly[:, 1]))
        d2 = tx * tx + ty * ty
        if d2 < 1e-6:
            return 0.0
        curvature = 2.0 * ty / d2
        delta = np.arctan(curvature * self.params.wheelbase_m)
        return float(np.clip(delta / self.params.max_steer_rad, -1.0, 1.0))
