"""``StudentDriver``: a trained student behind the ``riskdistill.contracts.agent.Driver`` interface.

It turns an :class:`~riskdistill.contracts.agent.AgentInput` (uint8 ``[N, H, W, 3]`` images, ``K``,
``T_ego_from_cam``, ego state, command, target point) into an
:class:`~riskdistill.contracts.batch.Observation` with the one conversion the data set uses for recorded
frames (:func:`~riskdistill.contracts.observation.observation_from_agent_input`), runs the student under
``torch.inference_mode()`` and returns ``Action(waypoints_ego=...)``.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from riskdistill.contracts.agent import Action, AgentInput, SensorRequest
from riskdistill.contracts.batch import Observation
from riskdistill.contracts.observation import observation_from_agent_input
from riskdistill.models.student import Student


class StudentDriver:
    """Drive with ``student``. ``rig``/``image_hw`` form the ``SensorRequest`` (the environment renders that
    rig at that size). ``with_risk=False`` skips the RiskHead. ``history_stride``: simulator steps between the
    current and the previous frame fed to a temporal student (5 = the 2 Hz of recorded data sets).

    After each ``act``, ``last_outputs`` holds numpy arrays without the batch dimension: ``waypoints [6, 2]``,
    ``occupancy [5, H, W]`` logits (if that head is on) and ``risk [H, W]`` in [0, 1] (if computed).
    """

    def __init__(
        self,
        student: Student,
        rig: str,
        image_hw: tuple[int, int],
        *,
        with_risk: bool = True,
        history_stride: int = 5,
    ):
        self.student = student.eval()
        self.sensors = SensorRequest(rig=rig, image_hw=(int(image_hw[0]), int(image_hw[1])))
        self.image_hw = self.sensors.image_hw
        self.with_risk = bool(with_risk) and student.has_risk_head
        self.history_stride = max(1, int(history_stride))
        self._history: deque[np.ndarray] = deque(maxlen=self.history_stride)
        self.last_outputs: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self._history.clear()
        self.last_outputs = {}

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
        obs, imgs = self.observation(agent_input)
        if self.student.cfg.temporal.enabled:
            full = len(self._history) == self._history.maxlen
            prev = self._history[0] if self._history else imgs
            obs.prev_images = torch.from_numpy(np.ascontiguousarray(prev)).permute(0, 3, 1, 2)[None, None]
            obs.prev_valid = torch.tensor([[full]])
            self._history.append(imgs)
        device = next(self.student.parameters()).device
        with torch.inference_mode():
            out = self.student(obs.to(device), with_risk=self.with_risk)
            out["plan"] = self.student.plan(out)  # path + speed -> waypoints, or the waypoints themselves
        self.last_outputs = {k: v[0].float().cpu().numpy() for k, v in out.items() if k != "bev"}
        if "risk" in self.last_outputs:
            self.last_outputs["risk"] = self.last_outputs["risk"][0]  # [1, H, W] -> [H, W]
        wp = self.last_outputs["plan"].astype(np.float64)
        return Action(waypoints_ego=wp)
