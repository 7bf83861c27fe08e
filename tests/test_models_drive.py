"""The student on recorded frames with teacher risk maps, and ``StudentDriver`` in the simulator
(AgentInput -> Observation exactly like the data set)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from riskdistill.contracts.agent import AgentInput
from riskdistill.data.storage import RecordedDataset
from riskdistill.data.targets import RiskMapTarget
from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
from riskdistill.geometry import BevGrid
from riskdistill.models import StudentDriver, build_student, student_config
from riskdistill.teacher import OracleTeacher, rasterise_label, save_risk_map

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------ recorded data
def _write_oracle_risk(root, label_dir, grid: BevGrid) -> None:
    ds = RecordedDataset(root)
    teacher = OracleTeacher()
    for i in range(len(ds)):
        frame = ds[i]
        risk = {o.object_id: o.risk for o in teacher.label(frame).objects}
        m, _ = rasterise_label(risk, frame.annotation, grid)
        save_risk_map(label_dir, frame.frame_id, m, grid)


def _agent_input(frame, order: list[int]) -> AgentInput:
    ann = frame.annotation
    return AgentInput(
        timestamp_s=frame.timestamp_s,
        ego=frame.ego,
        command=frame.command,
        target_point_ego=np.asarray(frame.target_point_ego),
        images=np.stack([frame.image(i) for i in order]),
        K=np.asarray(ann["K"])[order],
        T_ego_from_cam=np.asarray(ann["T_ego_from_cam"])[order],
        camera_names=tuple(frame.camera_names[i] for i in order),
    )


def test_recorded_frames_with_teacher_risk_and_driver_observation(tiny_dataset, tmp_path) -> None:
    grid = BevGrid.preset("tiny")
    _write_oracle_risk(tiny_dataset, tmp_path / "risk", grid)
    names = list(RecordedDataset(tiny_dataset).camera_names)
    cfg = student_config("tiny", cameras=names)
    torch.manual_seed(0)
    student = build_student(cfg)
    targets = [t if t != "risk_map" else RiskMapTarget(tmp_path / "risk") for t in student.target_names]
    ds = DrivingDataset(tiny_dataset, grid, targets, image_dtype="uint8")
    idx = [len(ds) // 3, 2 * len(ds) // 3]
    batch = collate_batch([ds[i] for i in idx])
    assert float(batch.targets.risk_map.max()) > 0.0  # the oracle found something risky
    out = student(batch.observation)
    losses = student.losses(out, batch.targets)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()

    # the driver turns an AgentInput of the same frame into the same Observation, even with the cameras
    # delivered in another order
    driver = StudentDriver(student, "bench2drive", tuple(cfg.image_hw))
    frame = RecordedDataset(tiny_dataset)[ds.indices[idx[0]]]
    ref = ds[idx[0]].observation
    for order in (list(range(len(names))), list(reversed(range(len(names))))):
        obs, _ = driver.observation(_agent_input(frame, order))
        for f in ("images", "camera_valid", "K", "T_ego_from_cam", "ego_state", "command", "target_point"):
            assert torch.equal(getattr(obs, f)[0], getattr(ref, f)), f
    ai = _agent_input(frame, list(range(1, len(names))))
    with pytest.raises(ValueError, match=r"needs camera.*CAM_FRONT"):
        driver.act(ai)


# ------------------------------------------------------------------------------------------ simulator
def test_student_driver_drives_in_the_simulator() -> None:
    from riskdistill.contracts.rig import load_rig, resize_rig
    from riskdistill.sim.env import DrivingEnv
    from riskdistill.sim.scenarios import build_scenario
    from riskdistill.sim.sensors.observe import CameraObserver

    torch.manual_seed(0)
    student = build_student(student_config("tiny", temporal={"enabled": True}))
    driver = StudentDriver(student, "bench2drive", (48, 132), history_stride=2, plan_every_steps=1)  # resized
    assert driver.sensors.rig == "bench2drive" and driver.sensors.image_hw == (48, 132)
    env = DrivingEnv(observe=CameraObserver(resize_rig(load_rig("bench2drive"), 64, 176)))
    ai = env.reset(build_scenario("VehicleTurningRoutePedestrian", 7, {"family": "junction4"}))
    driver.reset()
    for _ in range(3):
        action = driver.act(ai)
        assert action.waypoints_ego.shape == (6, 2) and np.all(np.isfinite(action.waypoints_ego))
        assert driver.last_outputs["risk"].shape == (64, 64)
        assert driver.last_outputs["occupancy"].shape == (5, 64, 64)
        ai, _, done = env.step(action)
        assert not done
    # a dropped camera (evaluation rig shift) is masked
    ai.extras["camera_valid"] = np.array([True, True, True, False, True, True])
    obs, _ = driver.observation(ai)
    assert obs.camera_valid.tolist() == [[True, True, True, False, True, True]]
    fast = StudentDriver(student, "bench2drive", (64, 176), with_risk=False)
    fast.act(ai)
    assert "risk" not in fast.last_outputs
