"""The occupancy brake: a student stops when its own BEV occupancy shows an obstacle in its planned path
within the stopping distance (``models.occupancy_brake``), in the driver, both engines and the evaluation's
driver options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from riskdistill.contracts.agent import AgentInput, EgoState
from riskdistill.contracts.batch import BEV_CHANNELS
from riskdistill.contracts.rig import load_rig, resize_rig
from riskdistill.geometry import BevGrid
from riskdistill.models import StudentDriver, build_student, save_student, student_config
from riskdistill.models.engines import OnnxEngine
from riskdistill.models.occupancy_brake import FRONT_BUMPER_X_M, OccupancyBrake
from riskdistill.types import Command

torch.set_num_threads(1)
HW = (32, 88)
GRID = BevGrid.preset("tiny")  # 1 m cells, 48 m ahead, 32 m to each side
STRAIGHT = np.stack([np.arange(1.0, 21.0), np.zeros(20)], axis=1)  # the rear-axle path, 20 m straight ahead


def occupancy_with(cells_xy: list[tuple[float, float]], channel: str = "vehicle", logit: float = 5.0):
    """``[C, H, W]`` logits: -5 everywhere, ``logit`` in ``channel`` at the cells holding the points."""
    occ = np.full((len(BEV_CHANNELS), GRID.n_rows, GRID.n_cols), -5.0, dtype=np.float32)
    for x, y in cells_xy:
        r, c = (int(v) for v in GRID.metric_to_cell(np.array([x, y])))
        occ[BEV_CHANNELS.index(channel), r, c] = logit
    return occ


def car_at(x: float, y: float) -> list[tuple[float, float]]:
    return [(x + dx, y + dy) for dx in (0.0, 1.0) for dy in (-0.5, 0.5)]


def test_it_counts_obstacle_cells_in_the_path_within_the_stopping_distance() -> None:
    brake = OccupancyBrake()
    assert brake.stopping_distance_m(0.0) == brake.margin_m
    assert brake.stopping_distance_m(10.0) == pytest.approx(10 * 0.5 + 100 / 10 + 2)
    ahead = occupancy_with(car_at(FRONT_BUMPER_X_M + 4.0, 0.0))
    assert brake.triggered(ahead, GRID, STRAIGHT, speed_mps=5.0)  # 4 m ahead at 5 m/s (reach 7 m)
    assert not brake.triggered(ahead, GRID, STRAIGHT, speed_mps=0.0)  # standing: only the 2 m margin
    far = occupancy_with(car_at(30.0, 0.0))
    assert not brake.triggered(far, GRID, STRAIGHT, speed_mps=5.0)
    assert brake.triggered(far, GRID, STRAIGHT, speed_mps=15.0)  # reach 7.5 + 22.5 + 2 m; past the path's end
    beside = occupancy_with(car_at(8.0, 3.0))  # the next lane
    assert brake.hits(beside, GRID, STRAIGHT, speed_mps=10.0) == 0
    behind = occupancy_with(car_at(-6.0, 0.0))
    assert brake.hits(behind, GRID, STRAIGHT, speed_mps=10.0) == 0
    # what counts: the obstacle channels above the threshold; not the road
    assert brake.triggered(occupancy_with(car_at(8.0, 0.0), "static_obstacle"), GRID, STRAIGHT, 5.0)
    assert brake.triggered(occupancy_with(car_at(8.0, 0.0), "vulnerable"), GRID, STRAIGHT, 5.0)
    assert not brake.triggered(occupancy_with(car_at(8.0, 0.0), "drivable"), GRID, STRAIGHT, 5.0)
    assert not brake.triggered(occupancy_with(car_at(8.0, 0.0), logit=-0.1), GRID, STRAIGHT, 5.0)
    unsure = occupancy_with(car_at(8.0, 0.0), logit=-0.1)  # p = 0.475
    assert OccupancyBrake(threshold=0.4).triggered(unsure, GRID, STRAIGHT, 5.0)
    one_cell = occupancy_with([(8.0, 0.0)])
    assert brake.hits(one_cell, GRID, STRAIGHT, 5.0) == 1  # one cell: below min_cells
    assert not brake.triggered(one_cell, GRID, STRAIGHT, 5.0)


def test_the_corridor_follows_the_planned_path() -> None:
    brake = OccupancyBrake()
    theta = np.linspace(0.05, 1.0, 20)  # a left turn of radius 12 m
    left_turn = np.stack([12 * np.sin(theta), 12 * (1 - np.cos(theta))], axis=1)
    on_the_curve = occupancy_with(car_at(float(12 * np.sin(0.7)), float(12 * (1 - np.cos(0.7)))))
    assert brake.triggered(on_the_curve, GRID, left_turn, speed_mps=6.0)
    assert not brake.triggered(on_the_curve, GRID, STRAIGHT, speed_mps=6.0)
    straight_on = occupancy_with(car_at(10.0, 0.0))  # where it would have gone without turning
    assert not brake.triggered(straight_on, GRID, left_turn, speed_mps=6.0)
    # no path at all (standing, nothing planned): straight ahead
    assert brake.triggered(occupancy_with(car_at(FRONT_BUMPER_X_M + 1.0, 0.0)), GRID, np.zeros((20, 2)), 0.0)


def test_bad_settings_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        OccupancyBrake(threshold=1.0)
    with pytest.raises(ValueError, match="min_cells"):
        OccupancyBrake(min_cells=0)
    with pytest.raises(ValueError, match=r"expected \[5, 64, 64\]"):
        OccupancyBrake().hits(np.zeros((5, 32, 32)), GRID, STRAIGHT, 5.0)


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    heads = {"risk": {"enabled": False}, "planning": {"path_points": 20, "speed_bins_mps": [0, 2, 4, 8]}}
    return build_student(student_config("tiny", image_hw=HW, heads=heads)).eval()


def agent_input(speed_mps: float) -> AgentInput:
    rig = resize_rig(load_rig("bench2drive"), *HW)
    return AgentInput(
        timestamp_s=0.0,
        ego=EgoState(speed_mps=speed_mps, accel_mps2=0.0, yaw_rate_radps=0.0, steer=0.0),
        command=Command.LANE_FOLLOW,
        target_point_ego=np.array([20.0, 0.0]),
        images=np.random.default_rng(0).integers(0, 255, (len(rig.cameras), *HW, 3), dtype=np.uint8),
        K=rig.K(),
        T_ego_from_cam=rig.T_ego_from_cam(),
        camera_names=tuple(rig.camera_names),
    )


def occupancy_bias(student, vehicle_logit: float) -> None:
    """Make the student's occupancy see a vehicle everywhere (high bias) or nowhere (low)."""
    conv = student.heads["occupancy"].post[-1]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(-10.0)
        conv.bias[BEV_CHANNELS.index("vehicle")] = vehicle_logit


def test_the_driver_stops_for_what_its_occupancy_sees(student, tmp_path) -> None:
    ai = agent_input(speed_mps=6.0)
    plain = StudentDriver(student, "bench2drive", HW, plan_every_steps=1)
    braking = StudentDriver(student, "bench2drive", HW, plan_every_steps=1, occupancy_brake=OccupancyBrake())
    occupancy_bias(student, -10.0)  # sees nothing: the brake changes nothing
    np.testing.assert_array_equal(braking.act(ai).waypoints_ego, plain.act(ai).waypoints_ego)
    assert not braking.braked and braking.brakes == 0
    occupancy_bias(student, 10.0)  # a vehicle in every cell: stop
    a = braking.act(ai)
    assert braking.braked and braking.brakes == 1
    assert np.all(a.waypoints_ego == 0.0) and np.any(plain.act(ai).waypoints_ego != 0.0)
    braking.reset()
    assert braking.brakes == 0 and not braking.braked
    # onnxruntime: the exported graph carries the occupancy when the brake needs it, and brakes alike
    fast = StudentDriver(
        student, "bench2drive", HW, plan_every_steps=1, engine="onnx",
        engine_options={"onnx_path": tmp_path}, occupancy_brake=OccupancyBrake(),
    )  # fmt: skip
    assert np.all(fast.act(ai).waypoints_ego == 0.0) and fast.braked
    braking.act(ai)
    np.testing.assert_allclose(fast.last_outputs["occupancy"], braking.last_outputs["occupancy"], atol=1e-4)
    assert OnnxEngine(student, False, with_occupancy=True).digest != OnnxEngine(student, False).digest


def test_a_student_without_occupancy_cannot_brake_on_it(tmp_path) -> None:
    from riskdistill.evaluation.drivers import make_driver_factory

    blind = build_student(student_config("tiny", image_hw=HW, heads={"occupancy": {"enabled": False}}))
    with pytest.raises(ValueError, match="occupancy head"):
        StudentDriver(blind, "bench2drive", HW, occupancy_brake=OccupancyBrake())
    save_student(blind, tmp_path / "blind")
    with pytest.raises(ValueError, match=r"occupancy_brake: the student .* has no occupancy head"):
        make_driver_factory(str(tmp_path / "blind"), options={"occupancy_brake": True})


def test_the_evaluation_driver_option(student, tmp_path) -> None:
    from riskdistill.evaluation.drivers import make_driver_factory

    save_student(student, tmp_path / "ckpt")
    plain = make_driver_factory(str(tmp_path / "ckpt"), options={"engine": "eager"})
    assert "occupancy_brake" not in plain.options()  # folders evaluated without it resume as before
    assert plain().occupancy_brake is None
    options = {"engine": "eager", "occupancy_brake": True}
    braking = make_driver_factory(str(tmp_path / "ckpt"), options=options)
    assert braking.options()["occupancy_brake"] is True
    assert braking().occupancy_brake == OccupancyBrake()


def test_route_files_count_the_brakes(student, tmp_path) -> None:
    from riskdistill.evaluation.route_runner import run_one_route
    from riskdistill.sim.suites import load_suite

    occupancy_bias(student, 10.0)  # a vehicle in every cell: every planning step is a stop
    save_student(student, tmp_path / "ckpt")
    spec = load_suite("bench").routes[0]
    variant = {"route_timeout_s": 2.0}
    braking = run_one_route(
        spec, 0, str(tmp_path / "ckpt"), variant, driver_options={"engine": "eager", "occupancy_brake": True}
    )
    assert braking["error"] is None
    stats = braking["driver_stats"]
    assert stats["plans"] == 4 and stats["occupancy_brakes"] == 4  # 2 s at 10 Hz, planning at 2 Hz
    plain = run_one_route(spec, 0, str(tmp_path / "ckpt"), variant, driver_options={"engine": "eager"})
    assert plain["driver_stats"]["plans"] == 4 and set(plain["driver_stats"]) == {"plans", "plans_reused"}
    assert "driver_stats" not in run_one_route(spec, 0, "expert", variant)  # a driver that keeps no counts


def test_plan_output_chooses_what_drives(student, tmp_path) -> None:
    from riskdistill.evaluation.drivers import make_driver_factory

    ai = agent_input(speed_mps=6.0)
    auto = StudentDriver(student, "bench2drive", HW, plan_every_steps=1)
    wps = StudentDriver(student, "bench2drive", HW, plan_every_steps=1, plan_output="waypoints")
    a, w = auto.act(ai).waypoints_ego, wps.act(ai).waypoints_ego
    assert student.heads["planning"].drives_with_path_speed  # auto drives path + speed
    np.testing.assert_allclose(w, wps.last_outputs["waypoints"], atol=0)
    np.testing.assert_allclose(a, auto.last_outputs["plan"], atol=0)
    assert not np.allclose(a, w)
    with pytest.raises(ValueError, match="plan_output"):
        StudentDriver(student, "bench2drive", HW, plan_output="path")
    save_student(student, tmp_path / "ckpt")
    assert (
        "plan_output"
        not in make_driver_factory(str(tmp_path / "ckpt"), options={"plan_output": "auto"}).options()
    )
    factory = make_driver_factory(
        str(tmp_path / "ckpt"), options={"plan_output": "waypoints", "engine": "eager"}
    )
    assert factory.options()["plan_output"] == "waypoints" and factory().plan_output == "waypoints"
    with pytest.raises(ValueError, match="valid: \\['auto', 'waypoints'\\]"):
        make_driver_factory(str(tmp_path / "ckpt"), options={"plan_output": "speed"})
