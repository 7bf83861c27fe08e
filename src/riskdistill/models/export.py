"""ONNX export of the driving path (optionally with the risk map), with the dynamo exporter.

Inputs (names): ``images`` [B, N, 3, H, W] (dtype of the example), ``camera_valid`` [B, N] bool, ``K``
[B, N, 3, 3], ``T_ego_from_cam`` [B, N, 4, 4], ``ego_state`` [B, 4], ``command`` [B] int64,
``target_point`` [B, 2]. Outputs: ``waypoints`` [B, 6, 2], ``path`` [B, P, 2] and ``speed_logits`` [B, K]
for a planner that predicts them, with ``with_risk`` ``risk`` [B, 1, H, W], and with ``with_occupancy`` the
BEV ``occupancy`` logits [B, C, H, W] (for a driver's occupancy brake) (:func:`driving_outputs`).
The batch axis ``B`` is dynamic (named ``batch``) unless ``dynamic_batch=False``. Temporal students are
exported without history (the current BEV stands in for the previous one). :func:`onnx_parity` runs the
file in onnxruntime against PyTorch (``riskdistill export onnx`` prints it).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from riskdistill.contracts.batch import Observation
from riskdistill.contracts.rig import Rig
from riskdistill.io import atomic_path
from riskdistill.models.student import Student

INPUT_NAMES = ("images", "camera_valid", "K", "T_ego_from_cam", "ego_state", "command", "target_point")


def driving_outputs(student: Student, with_risk: bool, with_occupancy: bool = False) -> list[str]:
    """The outputs driving needs: ``waypoints``, the planner's ``path`` and ``speed_logits`` when it plans a
    path and a speed, ``risk`` when asked for, and ``occupancy`` for a driver's occupancy brake."""
    names = ["waypoints"]
    if getattr(student.heads["planning"], "drives_with_path_speed", False):
        names += ["path", "speed_logits"]
    if with_risk:
        names.append("risk")
    if with_occupancy:
        if "occupancy" not in student.heads:
            raise ValueError("with_occupancy: this student has no occupancy head")
        names.append("occupancy")
    return names


class _DrivingPath(nn.Module):
    def __init__(self, student: Student, with_risk: bool, with_occupancy: bool = False):
        super().__init__()
        self.student = student
        self.with_risk = with_risk
        self.names = driving_outputs(student, with_risk, with_occupancy)

    def forward(self, images, camera_valid, K, T_ego_from_cam, ego_state, command, target_point):
        obs = Observation(images, camera_valid, K, T_ego_from_cam, ego_state, command, target_point)
        out = self.student(obs, with_risk=self.with_risk)
        return tuple(out[n] for n in self.names)


def _at_least_two(obs: Observation) -> Observation:
    """A batch of >= 2 samples (a batch of one would be specialised to a fixed size by the exporter)."""
    b = int(obs.images.shape[0])
    if b >= 2:
        return obs
    changes = {
        f.name: getattr(obs, f.name).repeat_interleave(2, dim=0)
        for f in fields(obs)
        if isinstance(getattr(obs, f.name), torch.Tensor)
    }
    return replace(obs, **changes)


def export_onnx(
    student: Student,
    path: str | Path,
    with_risk: bool,
    example_obs: Observation,
    dynamic_batch: bool = True,
    with_occupancy: bool = False,
) -> Path:
    """Export ``student`` (in eval mode) to ``path`` (written atomically); returns the path. With
    ``dynamic_batch`` the ONNX inputs and outputs take any batch size, else the example's; with
    ``with_occupancy`` the graph also returns the BEV occupancy."""
    path = Path(path)
    if dynamic_batch:
        example_obs = _at_least_two(example_obs)
    if with_risk and not student.has_risk_head:
        raise ValueError("export_onnx(with_risk=True) but the student has no RiskHead")
    was_training = student.training
    student.eval()
    wrapper = _DrivingPath(student, with_risk, with_occupancy).eval()
    args = tuple(getattr(example_obs, n) for n in INPUT_NAMES)
    outputs = wrapper.names
    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=4096)
        dynamic = tuple({0: batch} for _ in INPUT_NAMES)
    # the exporter's graph optimiser logs a warning per multi-output op it leaves alone (harmless, and dozens
    # of lines in an evaluation's output): quiet it for the export
    quiet = logging.getLogger("onnxscript.optimizer")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper, args, dynamo=True, input_names=list(INPUT_NAMES), output_names=outputs,
                dynamic_shapes=dynamic, verbose=False,
            )  # fmt: skip
            program.save(str(tmp))
    finally:
        quiet.setLevel(level)
        student.train(was_training)
    return path


def onnx_parity(
    student: Student, path: str | Path, observations: Sequence[Observation], with_risk: bool
) -> list[dict[str, float]]:
    """Run the ONNX file in onnxruntime (CPU) and ``student`` in PyTorch on each observation batch; one row
    per batch: ``{"batch", "<output>_max_abs_diff"}`` for every output of the file."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]
    was_training = student.training
    student.eval()
    rows = []
    try:
        for obs in observations:
            feeds = {n: getattr(obs, n).cpu().numpy() for n in names}
            got = sess.run(None, feeds)
            device = next(student.parameters()).device
            with torch.no_grad():
                ref = student(obs.to(device), with_risk=with_risk)
            row = {"batch": float(obs.images.shape[0])}
            for name, value in zip(outputs, got, strict=True):
                row[f"{name}_max_abs_diff"] = float(np.abs(value - ref[name].float().cpu().numpy()).max())
            rows.append(row)
    finally:
        student.train(was_training)
    return rows


def example_observation(
    student: Student, rig: Rig, batch: int, seed: int = 0, uint8_images: bool = True
) -> Observation:
    """A plausible observation batch for ``student`` on ``rig`` (resized to the student's image size,
    cameras in the student's order): random images, the rig's calibration, random ego state, command and
    target point. For tracing and parity checks."""
    from riskdistill.contracts.rig import resize_rig

    h, w = (int(v) for v in student.cfg.image_hw)
    rig = resize_rig(rig, h, w)
    names = list(student.cfg.cameras) if student.cfg.cameras else rig.camera_names
    cams = [rig.camera(n) for n in names]
    n = len(cams)
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, n, 3, h, w), generator=g, dtype=torch.uint8)
    K = torch.from_numpy(np.stack([c.K() for c in cams])).float()
    T = torch.from_numpy(np.stack([c.T_ego_from_cam() for c in cams])).float()
    return Observation(
        images=images if uint8_images else images.float() / 255.0,
        camera_valid=torch.ones(batch, n, dtype=torch.bool),
        K=K[None].repeat(batch, 1, 1, 1),
        T_ego_from_cam=T[None].repeat(batch, 1, 1, 1),
        ego_state=torch.rand(batch, 4, generator=g) * torch.tensor([12.0, 2.0, 0.2, 0.4])
        - torch.tensor([0.0, 1.0, 0.1, 0.2]),
        command=torch.randint(1, 7, (batch,), generator=g),
        target_point=torch.rand(batch, 2, generator=g) * torch.tensor([25.0, 10.0])
        - torch.tensor([0.0, 5.0]),
    )
