"""``StudentDriver``: a trained student behind the ``riskdistill.agent.Driver`` interface.

It turns an :class:`~riskdistill.agent.AgentInput` (uint8 ``[N, H, W, 3]`` images, ``K``, ``T_ego_from_cam``,
ego state, command, target point) into an :class:`~riskdistill.data.batch.Observation` exactly like
``data.torch_dataset`` does for recorded frames (same camera selection by name, bilinear resize with ``K``
scaled the same way, the same ``ego_state`` layout via ``ObservationBuilder.ego_state``; cameras marked
False in ``agent_input.extras["camera_valid"]`` are masked like dropped cameras), runs the student
under ``torch.inference_mode()`` and returns ``Action(waypoints_ego=...)``.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from PIL import Image

from riskdistill.agent import Action, AgentInput, SensorRequest
from riskdistill.data.batch import Observation
from riskdistill.data.torch_dataset import ObservationBuilder
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
    def _select(self, agent_input: AgentInput) -> list[int]:
        names = list(agent_input.camera_names)
        want = self.student.cfg.cameras
        if want is None:
            return list(range(len(agent_input.images)))
        missing = [c for c in want if c not in names]
        if missing:
            raise ValueError(
                f"StudentDriver: the model needs camera(s) {missing}, the input has {names} "
                f"(model cameras: {want})"
            )
        return [names.index(c) for c in want]

    def observation(self, agent_input: AgentInput) -> tuple[Observation, np.ndarray]:
        """The batched (B = 1) observation of ``agent_input`` and its ``[N, H, W, 3]`` uint8 images."""
        ai = agent_input
        if ai.images is None or ai.K is None or ai.T_ego_from_cam is None:
            raise ValueError(
                "StudentDriver: AgentInput has no camera images/calibration; run the environment with "
                f"the driver's sensors {self.sensors}"
            )
        imgs = np.asarray(ai.images)
        if imgs.ndim != 4 or imgs.shape[-1] != 3 or imgs.dtype != np.uint8:
            raise ValueError(
                f"StudentDriver: images must be uint8 [N, H, W, 3], got {imgs.dtype} {imgs.shape}"
            )
        idx = self._select(ai)
        imgs = imgs[idx]
        K = np.asarray(ai.K, dtype=np.float64)[idx].copy()
        T = np.asarray(ai.T_ego_from_cam, dtype=np.float64)[idx]
        h0, w0 = imgs.shape[1:3]
        h, w = self.image_hw
        if (h0, w0) != (h, w):  # same resize and K scaling as data.torch_dataset.ObservationBuilder
            imgs = np.stack(
                [np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR)) for a in imgs]
            )
            K[:, 0, :] *= w / w0
            K[:, 1, :] *= h / h0
        valid = np.ones(len(ai.camera_names) or len(ai.images), dtype=bool)
        if "camera_valid" in ai.extras:  # a dropped camera (e.g. a rig shift in evaluation) delivers black
            valid = np.asarray(ai.extras["camera_valid"], dtype=bool)
        obs = Observation(
            images=torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2)[None],  # [1, N, 3, H, W]
            camera_valid=torch.from_numpy(valid[idx].copy())[None],
            K=torch.from_numpy(K.astype(np.float32))[None],
            T_ego_from_cam=torch.from_numpy(T.astype(np.float32))[None],
            ego_state=torch.from_numpy(ObservationBuilder.ego_state(ai))[None],
            command=torch.tensor([int(ai.command)], dtype=torch.int64),
            target_point=torch.from_numpy(np.asarray(ai.target_point_ego, dtype=np.float32).reshape(2))[None],
        )
        return obs, imgs

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
        self.last_outputs = {k: v[0].float().cpu().numpy() for k, v in out.items() if k != "bev"}
        if "risk" in self.last_outputs:
            self.last_outputs["risk"] = self.last_outputs["risk"][0]  # [1, H, W] -> [H, W]
        wp = self.last_outputs["waypoints"].astype(np.float64)
        return Action(waypoints_ego=wp)
