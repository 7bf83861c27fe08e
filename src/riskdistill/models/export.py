"""ONNX export of the driving path (optionally with the risk map), with the dynamo exporter.

Inputs (names): ``images`` [B, N, 3, H, W] (dtype of the example), ``camera_valid`` [B, N] bool, ``K``
[B, N, 3, 3], ``T_ego_from_cam`` [B, N, 4, 4], ``ego_state`` [B, 4], ``command`` [B] int64,
``target_point`` [B, 2]. Outputs: ``waypoints`` [B, 6, 2] and, with ``with_risk``, ``risk`` [B, 1, H, W].
Temporal students are exported without history (the current BEV stands in for the previous one).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from riskdistill.contracts.batch import Observation
from riskdistill.io import atomic_path
from riskdistill.models.student import Student

INPUT_NAMES = ("images", "camera_valid", "K", "T_ego_from_cam", "ego_state", "command", "target_point")


class _DrivingPath(nn.Module):
    def __init__(self, student: Student, with_risk: bool):
        super().__init__()
        self.student = student
        self.with_risk = with_risk

    def forward(self, images, camera_valid, K, T_ego_from_cam, ego_state, command, target_point):
        obs = Observation(images, camera_valid, K, T_ego_from_cam, ego_state, command, target_point)
        out = self.student(obs, with_risk=self.with_risk)
        if self.with_risk:
            return out["waypoints"], out["risk"]
        return (out["waypoints"],)


def export_onnx(student: Student, path: str | Path, with_risk: bool, example_obs: Observation) -> Path:
    """Export ``student`` (in eval mode) to ``path`` (written atomically); returns the path."""
    path = Path(path)
    if with_risk and not student.has_risk_head:
        raise ValueError("export_onnx(with_risk=True) but the student has no RiskHead")
    was_training = student.training
    student.eval()
    wrapper = _DrivingPath(student, with_risk).eval()
    args = tuple(getattr(example_obs, n) for n in INPUT_NAMES)
    outputs = ["waypoints", "risk"] if with_risk else ["waypoints"]
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper, args, dynamo=True, input_names=list(INPUT_NAMES), output_names=outputs, verbose=False
            )
            program.save(str(tmp))
    finally:
        student.train(was_training)
    return path
