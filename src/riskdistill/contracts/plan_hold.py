"""A plan held between planning steps, seen from where the car is now.

A driver that plans at a lower rate than the 10 Hz simulation (``StudentDriver(plan_every_steps=5)``: 2 Hz,
the rate of the recorded data and of the plan's waypoints) hands the controller, between two plans, the
last plan re-expressed in the current ego frame and advanced in time:

- the ego's motion since the plan was made is dead-reckoned from what every driver is told (the time stamp,
  speed and yaw rate of ``AgentInput.ego``; the midpoint rule of the kinematic bicycle), never from ground
  truth;
- the plan's waypoints are timed (``PLAN_DT_S`` apart, the first one ``PLAN_DT_S`` after the plan was
  made); after ``tau`` seconds the held plan is the plan's trajectory sampled at ``tau + PLAN_DT_S * (i + 1)``
  (linear between waypoints, extrapolated along the last segment), so the controller keeps tracking the
  plan's speed profile instead of slowing down as it reaches the first waypoint.

    hold = PlanHold()
    hold.start(waypoints_ego, agent_input)        # a new plan, made from this input
    waypoints_now = hold.follow(next_agent_input) # every later step until the next plan
"""

from __future__ import annotations

import math

import numpy as np

from riskdistill.contracts.agent import PLAN_DT_S, AgentInput


def advance_plan(waypoints: np.ndarray, tau_s: float, plan_dt_s: float = PLAN_DT_S) -> np.ndarray:
    """``[T, 2]`` waypoints (timed ``plan_dt_s * (i + 1)``, from the origin at time 0) sampled ``tau_s``
    later: point ``i`` is the trajectory at ``tau_s + plan_dt_s * (i + 1)`` (extrapolated past the end
    along the last segment). Same frame as the input."""
    wp = np.asarray(waypoints, dtype=np.float64)
    pts = np.vstack([np.zeros((1, 2)), wp])
    times = plan_dt_s * np.arange(len(pts))
    t = tau_s + plan_dt_s * np.arange(1, len(wp) + 1)
    out = np.stack([np.interp(t, times, pts[:, k]) for k in range(2)], axis=1)
    late = t > times[-1]
    if late.any():
        vel = (pts[-1] - pts[-2]) / plan_dt_s
        out[late] = pts[-1] + vel * (t[late] - times[-1])[:, None]
    return out


class PlanHold:
    """The last plan and the ego's pose relative to where it was made (see the module docstring)."""

    def __init__(self, plan_dt_s: float = PLAN_DT_S):
        self.plan_dt_s = float(plan_dt_s)
        self.reset()

    def reset(self) -> None:
        self.waypoints: np.ndarray | None = None
        self.pose = np.zeros(3)  # x_m, y_m, yaw_rad of the ego in the frame of the plan
        self._t0_s = 0.0
        self._last_t_s = 0.0
        self._last_speed_mps = 0.0

    def start(self, waypoints_ego: np.ndarray, agent_input: AgentInput) -> None:
        """Hold ``waypoints_ego``, planned from ``agent_input`` (its ego frame is the plan's frame)."""
        self.waypoints = np.array(waypoints_ego, dtype=np.float64)
        self.pose = np.zeros(3)
        self._t0_s = self._last_t_s = float(agent_input.timestamp_s)
        self._last_speed_mps = float(agent_input.ego.speed_mps)

    def odometry(self, agent_input: AgentInput) -> np.ndarray:
        """Integrate the ego's motion up to ``agent_input`` (call once per step); the new pose."""
        t = float(agent_input.timestamp_s)
        dt = t - self._last_t_s
        if dt > 0.0:
            v0, v1 = self._last_speed_mps, float(agent_input.ego.speed_mps)
            yaw_rate = float(agent_input.ego.yaw_rate_radps)
            v_mid = 0.5 * (v0 + v1)
            x, y, yaw = self.pose
            yaw_mid = yaw + 0.5 * yaw_rate * dt
            self.pose = np.array(
                [x + v_mid * math.cos(yaw_mid) * dt, y + v_mid * math.sin(yaw_mid) * dt, yaw + yaw_rate * dt]
            )
        self._last_t_s = t
        self._last_speed_mps = float(agent_input.ego.speed_mps)
        return self.pose

    def follow(self, agent_input: AgentInput) -> np.ndarray:
        """The held plan for ``agent_input``: advanced by the time since it was made and expressed in the
        current ego frame (``[T, 2]``). RuntimeError when no plan is held."""
        if self.waypoints is None:
            raise RuntimeError("PlanHold.follow before start: no plan is held")
        x, y, yaw = self.odometry(agent_input)
        wp = advance_plan(self.waypoints, self._last_t_s - self._t0_s, self.plan_dt_s)
        c, s = math.cos(yaw), math.sin(yaw)
        d = wp - np.array([x, y])
        return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
