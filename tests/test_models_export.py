"""ONNX export of the student's driving path (with and without the risk map) matches PyTorch in
onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from riskdistill.models import build_student, export_onnx, student_config
from test_models import make_obs

torch.set_num_threads(1)


@pytest.mark.parametrize("with_risk", [True, False])
def test_onnx_export_matches_pytorch(with_risk: bool, tmp_path) -> None:
    torch.manual_seed(0)
    student = build_student(student_config("tiny")).eval()
    path = export_onnx(student, tmp_path / "student.onnx", with_risk=with_risk, example_obs=make_obs(1))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == (["waypoints", "risk"] if with_risk else ["waypoints"])
    assert sess.get_inputs()[0].shape[0] == "batch"  # the batch axis is dynamic (traced with batch 1)
    for b in (1, 4):
        obs = make_obs(b, seed=7)  # other values than the example used for tracing
        obs.camera_valid[0, 4] = False
        feeds = {i.name: getattr(obs, i.name).numpy() for i in sess.get_inputs()}
        got = sess.run(None, feeds)
        with torch.no_grad():
            ref = student(obs, with_risk=with_risk)
        assert got[0].shape == (b, 6, 2)
        np.testing.assert_allclose(got[0], ref["waypoints"].numpy(), atol=1e-4, rtol=0)
        if with_risk:
            np.testing.assert_allclose(got[1], ref["risk"].numpy(), atol=1e-4, rtol=0)
    assert student.training is False
