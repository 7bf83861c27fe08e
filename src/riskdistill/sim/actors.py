"""The actor table: every actor's state as columns of NumPy arrays (index 0 is always the ego).

A struct-of-arrays keeps world stepping vectorised and fast. Actors are created by scenarios through
:meth:`ActorTable.add`; their behaviour decides who moves them each step:

- ``EGO``: the driven vehicle, integrated with the kinematic bicycle model from the agent's controls;
- ``VEHICLE``: background or scripted vehicle, follows its path with IDM car-following and yields;
- ``WALKER``: pedestrian or cyclist, walks its path at its desired speed;
- ``STATIC``: parked vehicles and obstacles, never move.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from riskdistill.types import ActorClass


class Behavior(IntEnum):
    EGO = 0
    VEHICLE = 1
    WALKER = 2
    STATIC = 3


# Typical sizes (length, width, height) in metres per class; scenarios jitter them per seed.
CLASS_SIZE_M: dict[ActorClass, tuple[float, float, float]] = {
    ActorClass.CAR: (4.6, 1.9, 1.5),
    ActorClass.VAN: (5.2, 2.1, 2.2),
    ActorClass.TRUCK: (7.5, 2.5, 3.2),
    ActorClass.BUS: (11.0, 2.6, 3.2),
    ActorClass.PEDESTRIAN: (0.5, 0.5, 1.75),
    ActorClass.CYCLIST: (1.8, 0.6, 1.7),
    ActorClass.TRAFFIC_CONE: (0.4, 0.4, 0.7),
    ActorClass.BARRIER: (0.4, 1.8, 1.0),
    ActorClass.OPEN_DOOR: (1.0, 0.2, 1.2),
    ActorClass.EMERGENCY_VEHICLE: (5.5, 2.1, 2.3),
}


@dataclass
class ActorTable:
    """Columns of actor state. Positions are box centres in the world frame (ground level)."""

    capacity: int = 64
    n: int = 0
    id: np.ndarray = field(init=False)
    cls: np.ndarray = field(init=False)
    behavior: np.ndarray = field(init=False)
    x: np.ndarray = field(init=False)
    y: np.ndarray = field(init=False)
    yaw: np.ndarray = field(init=False)
    speed: np.ndarray = field(init=False)  # signed speed along the heading, m/s
    accel: np.ndarray = field(init=False)
    length: np.ndarray = field(init=False)
    width: np.ndarray = field(init=False)
    height: np.ndarray = field(init=False)
    color: np.ndarray = field(init=False)  # [N, 3] uint8, for rendering
    path_id: np.ndarray = field(init=False)  # index into World.paths, -1 for none
    s: np.ndarray = field(init=False)  # arc length of the box centre along its path
    desired_speed: np.ndarray = field(init=False)
    max_accel: np.ndarray = field(init=False)
    comfort_decel: np.ndarray = field(init=False)
    hold: np.ndarray = field(init=False)  # waits (speed 0) until a scenario trigger releases it
    ignore_lights: np.ndarray = field(init=False)
    ignore_actors: np.ndarray = field(init=False)  # drives on regardless (red-light runner, reckless driver)
    stopped_at_line: np.ndarray = field(
        init=False
    )  # id of the stop line this vehicle has served, -1 otherwise
    stop_timer: np.ndarray = field(init=False)
    wait_timer: np.ndarray = field(init=False)  # time spent (nearly) stopped, for deadlock breaking
    brake_override: np.ndarray = field(
        init=False
    )  # >0: forced deceleration (m/s^2) for scripted hard braking
    background: np.ndarray = field(init=False)  # background traffic (Bench2Drive's role_name 'background')

    _COLUMNS = (
        ("id", np.int64, -1),
        ("cls", np.int64, 0),
        ("behavior", np.int64, 0),
        ("x", np.float64, 0.0),
        ("y", np.float64, 0.0),
        ("yaw", np.float64, 0.0),
        ("speed", np.float64, 0.0),
        ("accel", np.float64, 0.0),
        ("length", np.float64, 0.0),
        ("width", np.float64, 0.0),
        ("height", np.float64, 0.0),
        ("path_id", np.int64, -1),
        ("s", np.float64, 0.0),
        ("desired_speed", np.float64, 0.0),
        ("max_accel", np.float64, 2.0),
        ("comfort_decel", np.float64, 3.0),
        ("hold", np.bool_, False),
        ("ignore_lights", np.bool_, False),
        ("ignore_actors", np.bool_, False),
        ("stopped_at_line", np.int64, -1),
        ("stop_timer", np.float64, 0.0),
        ("wait_timer", np.float64, 0.0),
        ("brake_override", np.float64, 0.0),
        ("background", np.bool_, False),
    )

    def __post_init__(self) -> None:
        for name, dtype, fill in self._COLUMNS:
            setattr(self, name, np.full(self.capacity, fill, dtype=dtype))
        self.color = np.zeros((self.capacity, 3), dtype=np.uint8)

    def _grow(self) -> None:
        new_cap = self.capacity * 2
        for name, dtype, fill in self._COLUMNS:
            col = np.full(new_cap, fill, dtype=dtype)
            col[: self.capacity] = getattr(self, name)
            setattr(self, name, col)
        color = np.zeros((new_cap, 3), dtype=np.uint8)
        color[: self.capacity] = self.color
        self.color = color
        self.capacity = new_cap

    def add(
        self,
        cls: ActorClass,
        behavior: Behavior,
        x: float,
        y: float,
        yaw: float,
        size_lwh: tuple[float, float, float] | None = None,
        speed: float = 0.0,
        desired_speed: float = 0.0,
        path_id: int = -1,
        s: float = 0.0,
        color: tuple[int, int, int] = (128, 128, 128),
        **flags: float | bool,
    ) -> int:
        """Append an actor and return its index. ``flags`` set any other column by name."""
        if self.n == self.capacity:
            self._grow()
        i = self.n
        length, width, height = size_lwh if size_lwh is not None else CLASS_SIZE_M[cls]
        self.id[i] = i
        self.cls[i] = int(cls)
        self.behavior[i] = int(behavior)
        self.x[i], self.y[i], self.yaw[i] = x, y, yaw
        self.speed[i], self.desired_speed[i] = speed, desired_speed
        self.length[i], self.width[i], self.height[i] = length, width, height
        self.path_id[i], self.s[i] = path_id, s
        self.color[i] = color
        for key, value in flags.items():
            if not hasattr(self, key) or key in ("n", "capacity", "color"):
                valid = [c[0] for c in self._COLUMNS]
                raise ValueError(f"unknown actor column {key!r}; valid: {valid}")
            getattr(self, key)[i] = value
        self.n += 1
        return i

    def view(self, name: str) -> np.ndarray:
        """The first ``n`` rows of a column."""
        return getattr(self, name)[: self.n]

    def velocity_xy(self) -> np.ndarray:
        """World-frame velocity ``[n, 2]``."""
        sp = self.speed[: self.n]
        yaw = self.yaw[: self.n]
        return np.stack([sp * np.cos(yaw), sp * np.sin(yaw)], axis=1)
