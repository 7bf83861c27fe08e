"""The one driver interface, shared by the simulator, closed-loop and open-loop evaluation.

A driver sees an :class:`AgentInput` only: sensor observations, ego state and the route command with
its target point. It never sees ground truth. (The privileged expert is given a ground-truth handle
when it is constructed; the interface itself carries none.)

Everything is in the ego frame: origin on the ground below the rear axle, x forward, y left, z up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from riskdistill.types import Command

PLAN_DT_S = 0.5  # waypoint spacing of a plan (Bench2Drive / VAD convention: 2 Hz)
PLAN_HORIZON = 6  # waypoints per plan (3 s)


@dataclass(frozen=True)
class EgoState:
    """What the ego knows about itself (CAN bus / IMU), in the ego frame."""

    speed_mps: float
    accel_mps2: float
    yaw_rate_radps: float
    steer: float  # last applied steering command in [-1, 1], positive = left


@dataclass
class AgentInput:
    """Everything a driver may use at one time step."""

    timestamp_s: float
    ego: EgoState
    command: Command
    target_point_ego: np.ndarray  # [2] the route point ~20 m ahead, in the ego frame
    images: np.ndarray | None = None  # [N_cam, H, W, 3] uint8, when the driver asked for cameras
    K: np.ndarray | None = None  # [N_cam, 3, 3] intrinsics
    T_ego_from_cam: np.ndarray | None = None  # [N_cam, 4, 4]
    camera_names: tuple[str, ...] = ()
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. previous frames


@dataclass(frozen=True)
class Controls:
    """Direct vehicle controls. ``steer`` in [-1, 1] with positive = turn left (CCW)."""

    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0

    def clipped(self) -> Controls:
        return Controls(
            throttle=float(np.clip(self.throttle, 0.0, 1.0)),
            steer=float(np.clip(self.steer, -1.0, 1.0)),
            brake=float(np.clip(self.brake, 0.0, 1.0)),
        )


@dataclass(frozen=True)
class Action:
    """A driver's output: a plan of future ego waypoints (tracked by the built-in controller), or controls.

    ``waypoints_ego`` is ``[PLAN_HORIZON, 2]`` at ``PLAN_DT_S`` spacing in the current ego frame.
    """

    waypoints_ego: np.ndarray | None = None
    controls: Controls | None = None
    info: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.waypoints_ego is None) == (self.controls is None):
            raise ValueError("an Action carries exactly one of waypoints_ego or controls")
        if self.waypoints_ego is not None:
            wp = np.asarray(self.waypoints_ego, dtype=np.float64)
            if wp.ndim != 2 or wp.shape[1] != 2 or len(wp) < 1:
                raise ValueError(f"waypoints_ego must be [N, 2], got shape {wp.shape}")
            if not np.all(np.isfinite(wp)):
                raise ValueError("waypoints_ego contains NaN or inf")


@dataclass(frozen=True)
class SensorRequest:
    """What a driver needs from the world: a camera rig name (``None``: no cameras) and image size."""

    rig: str | None = None
    image_hw: tuple[int, int] | None = None


@runtime_checkable
class Driver(Protocol):
    """Anything that drives: the expert, a trained student, a scripted baseline."""

    sensors: SensorRequest

    def reset(self) -> None:
        """Called at the start of every route."""

    def act(self, agent_input: AgentInput) -> Action:
        """Map one observation to one action."""
        ...
