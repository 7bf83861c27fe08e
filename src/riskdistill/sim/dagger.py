"""DAgger-style recording: a learner drives, the privileged expert says what it would do from there.

    factory = DaggerFactory(learner=StudentDriverFactory("runs/x/checkpoints/final"), expert_share=0.3)
    run_route(instance, factory, env=DrivingEnv(observe=RequestedCameras()), observers=[recorder])

Behaviour cloning trains on the states the expert visits; a student that drifts or misses a hazard ends up
in states nobody labelled (the student of issue 14 drives into blocked lanes instead of stopping behind the
obstacle). DAgger (Ross et al., 2011) records the states the *learner* visits and labels them with the
expert's decision. :class:`DaggerDriver` does that with the rule-based expert, which re-plans from any state:
at every step the expert plans (its path and target speed are the frame's labels, ``expert_path_ego`` /
``expert_speed_mps``, see ``data/record.py``) and the learner acts; which of the two actions is executed is
drawn afresh for every segment of ``segment_s`` seconds (the expert with probability ``expert_share``, the
beta of DAgger), seeded, so a recording is reproducible. ``expert_in_control`` tells the recorder who drove
this step: a driven future that the learner steered is not the expert's plan and is not a label.

With ``takeover_after_s`` the expert takes the wheel for a segment once the learner has stood still that long
while the expert's plan would move: a learner that stops for no reason records the expert's restart instead
of the wait. It cannot rescue a car that has driven into a standing obstacle (the collision response leaves
it there at speed 0 and nobody can reverse): on the overtaking routes 92 % of a recording of the study's
baseline stands still, with or without takeover (results/overtaking).

The learner is any non-privileged driver factory (a student checkpoint's, see
``evaluation/drivers.make_driver_factory``); it gets observations only, as in closed-loop evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from riskdistill.contracts.agent import Action, AgentInput, SensorRequest
from riskdistill.sim.env import BLOCKED_SPEED_MPS, DrivingEnv
from riskdistill.sim.expert import ExpertConfig, ExpertDriver

EXPERT_GOES_MPS = 0.5  # stuck: the learner stands still (BLOCKED_SPEED_MPS) while the expert would go


@dataclass(frozen=True)
class DaggerFactory:
    """A privileged factory (it is given the environment, for the expert) of :class:`DaggerDriver`.
    Picklable when ``learner`` is (worker processes rebuild the driver per route)."""

    learner: Any  # () -> Driver, a non-privileged factory
    expert_share: float = 0.0  # probability that the expert drives a segment (DAgger's beta)
    segment_s: float = 4.0  # who drives is drawn afresh every segment_s seconds
    seed: int = 0
    takeover_after_s: float | None = None  # a learner stuck this long hands the expert a segment; None: never
    expert_config: ExpertConfig = field(default_factory=ExpertConfig)
    privileged: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.expert_share <= 1.0:
            raise ValueError(f"expert_share must be in [0, 1], got {self.expert_share}")
        if self.segment_s <= 0.0:
            raise ValueError(f"segment_s must be > 0, got {self.segment_s}")
        if self.takeover_after_s is not None and self.takeover_after_s <= 0.0:
            raise ValueError(f"takeover_after_s must be > 0 or None, got {self.takeover_after_s}")
        if getattr(self.learner, "privileged", False):
            raise ValueError("the learner must be a driver that sees observations only, not a privileged one")

    def __call__(self, env: DrivingEnv) -> DaggerDriver:
        return DaggerDriver(env, self)


class DaggerDriver:
    """The learner drives (or, per segment, the expert); the expert plans at every step. Its plan
    (``last_plan_path_world``, ``last_plan_speed_mps``, ``last_reason``, ``noise_steer``) is the expert's."""

    privileged = True

    def __init__(self, env: DrivingEnv, factory: DaggerFactory):
        from riskdistill.sim.rollout import build_driver

        self.env = env
        self.factory = factory
        self.expert = ExpertDriver(env, factory.expert_config)
        self.learner = build_driver(factory.learner, env)
        self.sensors: SensorRequest = getattr(self.learner, "sensors", SensorRequest())
        self.expert_in_control = True
        self._rng = np.random.default_rng(factory.seed)
        self._left_s = 0.0
        self._stuck_s = 0.0
        self.takeovers = 0

    # the expert's plan is the label of every frame
    @property
    def last_plan_path_world(self) -> np.ndarray | None:
        return self.expert.last_plan_path_world

    @property
    def last_plan_speed_mps(self) -> float:
        return self.expert.last_plan_speed_mps

    @property
    def last_reason(self) -> str:
        return self.expert.last_reason

    @property
    def noise_steer(self) -> float:
        return self.expert.noise_steer if self.expert_in_control else 0.0

    def needs_sensors(self) -> bool:
        fn = getattr(self.learner, "needs_sensors", None)
        return True if fn is None else bool(fn())

    def reset(self) -> None:
        self.expert.reset()
        self.learner.reset()
        self._rng = np.random.default_rng(self.factory.seed)
        self._left_s = 0.0
        self._stuck_s = 0.0
        self.takeovers = 0
        self.expert_in_control = True

    def act(self, agent_input: AgentInput) -> Action:
        expert_action = self.expert.act(agent_input)  # always: its plan from this state is the label
        learner_action = self.learner.act(agent_input)  # always: a learner that plans at a lower rate
        if self._left_s <= 0.0:  # keeps its own clock
            self.expert_in_control = bool(self._rng.random() < self.factory.expert_share)
            self._left_s = self.factory.segment_s
        dt = self.env.world.dt_s
        stuck = (
            not self.expert_in_control
            and agent_input.ego.speed_mps < BLOCKED_SPEED_MPS
            and self.expert.last_plan_speed_mps >= EXPERT_GOES_MPS
        )
        self._stuck_s = self._stuck_s + dt if stuck else 0.0
        limit = self.factory.takeover_after_s
        if limit is not None and self._stuck_s >= limit - 1e-9:  # the expert drives the learner out
            self.expert_in_control = True
            self._left_s = self.factory.segment_s
            self._stuck_s = 0.0
            self.takeovers += 1
        self._left_s -= dt
        return expert_action if self.expert_in_control else learner_action


class RequestedCameras:
    """``DrivingEnv(observe=...)`` that renders the cameras a driver's :class:`SensorRequest` names (at its
    image size), once :meth:`configure` is called; nothing before, or for a driver without cameras."""

    def __init__(self, jpeg_quality: int | None = None):
        self.jpeg_quality = jpeg_quality
        self._inner: Any = None

    def configure(self, sensors: SensorRequest | None) -> None:
        if sensors is None or sensors.rig is None:
            return
        from riskdistill.contracts.rig import load_rig, resize_rig
        from riskdistill.sim.sensors.observe import CameraObserver

        rig = load_rig(sensors.rig)
        if sensors.image_hw is not None:
            rig = resize_rig(rig, int(sensors.image_hw[0]), int(sensors.image_hw[1]))
        self._inner = CameraObserver(rig, self.jpeg_quality)

    def __call__(self, instance: Any, world: Any) -> dict[str, Any]:
        return {} if self._inner is None else self._inner(instance, world)
