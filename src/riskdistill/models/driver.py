"""``StudentDriver``: a trained student behind the ``riskdistill.contracts.agent.Driver`` interface.

It turns an :class:`~riskdistill.contracts.agent.AgentInput` (uint8 ``[N, H, W, 3]`` images, ``K``,
``T_ego_from_cam``, ego state, command, target point) into an
:class:`~riskdistill.contracts.batch.Observation` with the one conversion the data set uses for recorded
frames (:func:`~riskdistill.contracts.observation.observation_from_agent_input`), runs the student under
``torch.inference_mode()`` and returns ``Action(waypoints_ego=...)``.

Planning rate: with ``plan_every_steps=k`` the student plans on every ``k``-th call of ``act`` after
``reset`` (steps ``0, k, 2k, ...``); in between, ``act`` returns the last plan held in the current ego frame
(:class:`~riskdistill.contracts.plan_hold.PlanHold`: the ego's motion dead-reckoned from the speed and yaw
rate it is told, the plan advanced in time) without looking at the cameras, and :meth:`needs_sensors` tells
the environment that it may skip rendering them. The rate belongs to the driver, so the simulator's
evaluation and a CARLA agent use it alike. ``k = 5`` (2 Hz) is the rate of the recorded data and of the
plan's waypoints.

Engine: ``"eager"`` (PyTorch, the reference) or ``"onnx"`` (onnxruntime, :mod:`riskdistill.models.engines`).

Repeated inputs: a planning step whose observation equals the previous planning step's, tensor for tensor
and bit for bit (a car standing still in a scene where nothing it sees moves: a blocked route waits out
its scenario timeout this way), reuses that step's engine outputs instead of running the engine again
(``reused`` after ``act``; ``stats()["plans_reused"]``). The engines are deterministic functions of the
observation, so the drive is identical with and without it (``reuse_repeated=False``, for benchmarks). An
engine object of your own must be one too, or pass ``reuse_repeated=False``.

Plan output: ``plan_output="auto"`` drives what the planning head chooses (path + speed when it predicts
them); ``"waypoints"`` drives its waypoint output instead (an ablation: which output should drive).

Safety check (off by default): with ``occupancy_brake``
(:class:`~riskdistill.models.occupancy_brake.OccupancyBrake`) a planning step whose predicted occupancy shows
an obstacle in the corridor of the planned path within the stopping distance hands the controller a stop
instead (``braked``; ``brakes`` counts them since ``reset``). :meth:`stats` reports the counts of a route
(the evaluation writes them to its route file).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from riskdistill.contracts.agent import Action, AgentInput, SensorRequest
from riskdistill.contracts.batch import Observation
from riskdistill.contracts.observation import observation_from_agent_input
from riskdistill.contracts.plan_hold import PlanHold
from riskdistill.models.engines import ENGINES, Engine, build_engine
from riskdistill.models.occupancy_brake import OccupancyBrake
from riskdistill.models.student import Student

#: The planning rate of ``StudentDriver`` unless told otherwise: every 5th simulator step (2 Hz), the rate of
#: the recorded data and of the plan's waypoints; it drives as well as planning at 10 Hz for a fifth of the
#: compute (``docs/benchmarks.md``, closed-loop throughput).
DEFAULT_PLAN_EVERY_STEPS = 5
DEFAULT_ENGINE = "eager"
#: Which output drives: ``"auto"``, the planning head's own choice (path + speed when it predicts them, else
#: its waypoints; ``Student.plan``), or ``"waypoints"``, the waypoint output even when path and speed exist.
PLAN_OUTPUTS: tuple[str, ...] = ("auto", "waypoints")


class StudentDriver:
    """Drive with ``student``. ``rig``/``image_hw`` form the ``SensorRequest`` (the environment renders that
    rig at that size). ``with_risk=False`` skips the RiskHead. ``history_stride``: simulator steps between the
    current and the previous frame fed to a temporal student (5 = the 2 Hz of recorded data sets; a
    multiple of ``plan_every_steps``). ``plan_every_steps``: plan on every k-th step, hold the plan in
    between (module docstring). ``engine``: ``"eager"``, ``"onnx"`` or an engine object
    (:mod:`riskdistill.models.engines`); ``engine_options`` go to
    :func:`~riskdistill.models.engines.build_engine`. ``occupancy_brake``: the safety check of the module
    docstring (needs the occupancy head; an engine object given must return ``occupancy``).

    After each ``act``, ``last_outputs`` holds numpy arrays without the batch dimension: ``waypoints [6, 2]``,
    ``occupancy [5, H, W]`` logits (if that head is on and the engine computes it: ``eager``; ``onnx`` with
    the occupancy brake) and
    ``risk [H, W]`` in [0, 1] (if computed), from the last planning step; ``planned`` says whether the last
    ``act`` ran the student (False: it returned the held plan).
    """

    def __init__(
        self,
        student: Student,
        rig: str,
        image_hw: tuple[int, int],
        *,
        with_risk: bool = True,
        history_stride: int = 5,
        plan_every_steps: int = DEFAULT_PLAN_EVERY_STEPS,
        engine: str | Engine = DEFAULT_ENGINE,
        engine_options: dict | None = None,
        occupancy_brake: OccupancyBrake | None = None,
        plan_output: str = "auto",
        reuse_repeated: bool = True,
    ):
        self.student = student.eval()
        self.sensors = SensorRequest(rig=rig, image_hw=(int(image_hw[0]), int(image_hw[1])))
        self.image_hw = self.sensors.image_hw
        self.with_risk = bool(with_risk) and student.has_risk_head
        self.history_stride = max(1, int(history_stride))
        if int(plan_every_steps) < 1:
            raise ValueError(f"plan_every_steps must be >= 1, got {plan_every_steps}")
        self.plan_every_steps = int(plan_every_steps)
        if student.cfg.temporal.enabled and self.history_stride % self.plan_every_steps:
            raise ValueError(
                f"history_stride ({self.history_stride}) must be a multiple of plan_every_steps "
                f"({self.plan_every_steps}): a temporal student sees frames of planning steps only"
            )
        if occupancy_brake is not None and "occupancy" not in student.heads:
            raise ValueError("occupancy_brake needs a student with the occupancy head (heads.occupancy)")
        self.occupancy_brake = occupancy_brake
        if plan_output not in PLAN_OUTPUTS:
            raise ValueError(f"unknown plan_output {plan_output!r}; valid: {list(PLAN_OUTPUTS)}")
        self.plan_output = plan_output
        self.grid = student.cfg.bev_grid()
        if isinstance(engine, str):
            if engine not in ENGINES:
                raise ValueError(f"unknown inference engine {engine!r}; valid engines: {list(ENGINES)}")
            engine = build_engine(
                engine,
                self.student,
                self.with_risk,
                with_occupancy=occupancy_brake is not None,
                **(engine_options or {}),
            )
        self.engine = engine
        self.reuse_repeated = bool(reuse_repeated)
        self._weights = [*self.student.parameters(), *self.student.buffers()]
        self._last_call: tuple[Observation, int, dict[str, np.ndarray]] | None = None
        self._history: deque[np.ndarray] = deque(maxlen=self.history_stride // self.plan_every_steps)
        self._hold = PlanHold()
        self._step = 0
        self.planned = False
        self.reused = False
        self.reuses = 0
        self.braked = False
        self.brakes = 0
        self.last_outputs: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self._history.clear()
        self._hold.reset()
        self._last_call = None
        self._step = 0
        self.planned = False
        self.reused = False
        self.reuses = 0
        self.braked = False
        self.brakes = 0
        self.last_outputs = {}

    def stats(self) -> dict[str, int]:
        """Counts since ``reset``: planning steps (``plans``), those that reused the previous planning step's
        engine outputs for an identical observation (``plans_reused``) and, with the occupancy brake, the
        planning steps it turned into a stop (``occupancy_brakes``)."""
        out = {"plans": -(-self._step // self.plan_every_steps)}  # steps 0, k, 2k, ... of those acted on
        out["plans_reused"] = self.reuses
        if self.occupancy_brake is not None:
            out["occupancy_brakes"] = self.brakes
        return out

    def needs_sensors(self) -> bool:
        """Whether the next ``act`` reads the cameras (it plans); the environment may skip rendering them
        otherwise (``DrivingEnv.observe_when``)."""
        return self._step % self.plan_every_steps == 0

    # ---------------------------------------------------------------------------------- conversion
    def observation(self, agent_input: AgentInput) -> tuple[Observation, np.ndarray]:
        """The batched (B = 1) observation of ``agent_input`` and its ``[N, H, W, 3]`` uint8 images."""
        try:
            obs = observation_from_agent_input(agent_input, self.student.cfg.cameras, self.image_hw)
        except ValueError as exc:
            raise ValueError(f"StudentDriver (sensors {self.sensors}): {exc}") from exc
        imgs = obs.images.permute(0, 2, 3, 1).numpy()
        return obs.batched(), imgs

    # ---------------------------------------------------------------------------------- driving
    def act(self, agent_input: AgentInput) -> Action:
        plan_now = self._step % self.plan_every_steps == 0
        self._step += 1
        self.planned = plan_now
        if not plan_now:
            return Action(waypoints_ego=self._hold.follow(agent_input))
        action = self._plan(agent_input)
        if self.plan_every_steps > 1:
            self._hold.start(action.waypoints_ego, agent_input)
        return action

    def _plan_from(self, out: dict[str, np.ndarray]) -> np.ndarray:
        """``[6, 2]`` waypoints for the controller from the engine's outputs (batch of one)."""
        if self.plan_output == "waypoints":
            return np.asarray(out["waypoints"][0], dtype=np.float32)
        keys = ("waypoints", "path", "speed_logits")
        with torch.inference_mode():
            plan = self.student.plan({k: torch.from_numpy(np.asarray(out[k])) for k in keys if k in out})
        return plan[0].float().cpu().numpy()

    def _run_engine(self, obs: Observation) -> dict[str, np.ndarray]:
        """The engine's outputs for ``obs``: those of the previous planning step when ``obs`` equals its
        observation bit for bit and the weights are unchanged (module docstring), else a fresh engine run."""
        self.reused = False
        if not self.reuse_repeated:
            return self.engine(obs)
        weights = self._weights_version()
        last = self._last_call
        if last is not None and last[1] == weights and obs.equals(last[0]):
            self.reused = True
            self.reuses += 1
            return last[2]
        out = self.engine(obs)
        self._last_call = (obs.clone(), weights, out)  # a copy: tensors may share the sensor buffers
        return out

    def _weights_version(self) -> int:
        """A count that grows with every in-place change of the student's weights (PyTorch's tensor version
        counters): outputs are reused only for the weights that made them."""
        return sum(t._version for t in self._weights)

    def _plan(self, agent_input: AgentInput) -> Action:
        """Run the student on ``agent_input`` (a planning step)."""
        obs, imgs = self.observation(agent_input)
        if self.student.cfg.temporal.enabled:
            full = len(self._history) == self._history.maxlen
            prev = self._history[0] if self._history else imgs
            obs.prev_images = torch.from_numpy(np.ascontiguousarray(prev)).permute(0, 3, 1, 2)[None, None]
            obs.prev_valid = torch.tensor([[full]])
            self._history.append(imgs)
        out = self._run_engine(obs)
        self.last_outputs = {k: v[0] for k, v in out.items()}
        self.last_outputs["plan"] = self._plan_from(out)  # path + speed -> waypoints, or the waypoints
        if "risk" in self.last_outputs:
            self.last_outputs["risk"] = self.last_outputs["risk"][0]  # [1, H, W] -> [H, W]
        wp = self.last_outputs["plan"].astype(np.float64)
        if self.occupancy_brake is not None:
            if "occupancy" not in self.last_outputs:
                raise ValueError("occupancy_brake: the inference engine returned no 'occupancy' output")
            path = self.last_outputs.get("path", self.last_outputs["waypoints"])
            occ, speed = self.last_outputs["occupancy"], float(agent_input.ego.speed_mps)
            self.braked = self.occupancy_brake.triggered(occ, self.grid, path, speed)
            if self.braked:
                self.brakes += 1
                wp = np.zeros_like(wp)  # the controller brakes for a plan that stays put
        return Action(waypoints_ego=wp)
