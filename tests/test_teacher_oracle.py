"""The VLM-free teacher: label schema, oracle risk, rasteriser and the label folder RiskMapTarget reads."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from riskdistill.data.storage import RecordedDataset
from riskdistill.geometry import BevGrid
from riskdistill.teacher import (
    FrameLabel,
    ObjectRisk,
    OracleConfig,
    OracleTeacher,
    Provenance,
    rasterise_risk,
    save_risk_map,
)
from riskdistill.types import ActorClass

GRID = BevGrid.centered(40.0, 40.0, 0.5)  # 80 x 80, x in (-20, 20], y in (-20, 20]


def _obj(oid: int, risk: float, rank: int) -> dict:
    return {"object_id": oid, "cls": "pedestrian", "risk": risk, "rank": rank, "reason": "test"}


def _label(objects: list[dict], frame_risk: float | None = None) -> dict:
    fr = max((o["risk"] for o in objects), default=0.0) if frame_risk is None else frame_risk
    return {
        "frame_id": "r0/00005",
        "objects": objects,
        "frame_risk": fr,
        "summary": "s",
        "provenance": {"teacher": "oracle", "decoding": {"temperature": 0.0}, "seed": 3},
    }


# ------------------------------------------------------------------------------------------ schema
def test_schema_json_round_trip() -> None:
    label = FrameLabel.model_validate(
        _label(
            [
                _obj(7, 0.9, 1) | {"cameras": ["CAM_FRONT"], "box2d": {"CAM_FRONT": [1, 2, 30, 40]}},
                _obj(3, 0.2, 2),
            ]
        )
    )
    back = FrameLabel.model_validate_json(label.model_dump_json())
    assert back == label
    assert back.objects[0].box2d == {"CAM_FRONT": [1.0, 2.0, 30.0, 40.0]}
    assert isinstance(back.provenance, Provenance)


@pytest.mark.parametrize("bad", [1.5, -0.1, math.nan, math.inf])
def test_schema_rejects_bad_risk_naming_the_field(bad: float) -> None:
    with pytest.raises(ValidationError) as exc:
        ObjectRisk.model_validate(_obj(1, bad, 1))
    assert exc.value.errors()[0]["loc"] == ("risk",)
    assert "risk" in str(exc.value)


def test_schema_rejects_inconsistent_ranks_and_frame_risk() -> None:
    with pytest.raises(ValidationError, match=r"objects: ranks must be 1\.\.2"):
        FrameLabel.model_validate(_label([_obj(1, 0.9, 1), _obj(2, 0.5, 3)]))
    with pytest.raises(ValidationError, match="objects: ranks must follow risk descending"):
        FrameLabel.model_validate(_label([_obj(1, 0.5, 1), _obj(2, 0.9, 2)]))
    with pytest.raises(ValidationError, match="frame_risk must be the maximum"):
        FrameLabel.model_validate(_label([_obj(1, 0.5, 1)], frame_risk=0.2))
    with pytest.raises(ValidationError, match="rank"):
        ObjectRisk.model_validate(_obj(1, 0.5, 0))
    with pytest.raises(ValidationError, match="teacher"):
        Provenance.model_validate({"teacher": "human"})


# ------------------------------------------------------------------------------------------ oracle
def _straight_path(speed: float = 5.0, n: int = 8, dt: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([np.arange(1, n + 1) * speed * dt, np.zeros(n)], axis=1), np.ones(n, dtype=bool)


def _label_one(teacher: OracleTeacher, cls: ActorClass, center, size, vel) -> float:
    fxy, fv = _straight_path()
    label = teacher.label_arrays("t/00000", [1], [int(cls)], [center], [size], [vel], fxy, fv)
    return label.objects[0].risk


def test_pedestrian_stepping_in_front_is_riskier_than_walking_away() -> None:
    teacher = OracleTeacher()
    ped = ActorClass.PEDESTRIAN
    stepping_in = _label_one(teacher, ped, [8.0, 3.0], [0.6, 0.6], [0.0, -1.5])
    walking_away = _label_one(teacher, ped, [8.0, 3.0], [0.6, 0.6], [0.0, 1.5])
    assert stepping_in > walking_away + 0.2
    fxy, fv = _straight_path()
    label = teacher.label_arrays(
        "t/00000", [5, 6], [int(ped)] * 2, [[8.0, 3.0]] * 2, [[0.6, 0.6]] * 2, [[0, 1.5], [0, -1.5]], fxy, fv
    )
    assert [o.object_id for o in label.objects] == [6, 5]
    assert "crossing the ego path in" in label.objects[0].reason
    assert label.frame_risk == label.objects[0].risk


def test_vulnerability_ordering_same_geometry() -> None:
    teacher = OracleTeacher()
    args = ([8.0, 3.0], [0.8, 0.8], [0.0, -1.5])
    ped = _label_one(teacher, ActorClass.PEDESTRIAN, *args)
    car = _label_one(teacher, ActorClass.CAR, *args)
    cone = _label_one(teacher, ActorClass.TRAFFIC_CONE, *args)
    assert ped > car > cone > 0.0


def test_parked_vehicle_next_to_path_gets_occlusion_risk() -> None:
    teacher = OracleTeacher()
    parked = _label_one(teacher, ActorClass.CAR, [12.0, 3.5], [4.5, 2.0], [0.0, 0.0])
    far_side = _label_one(teacher, ActorClass.CAR, [12.0, 12.0], [4.5, 2.0], [0.0, 0.0])
    assert parked > far_side
    fxy, fv = _straight_path()
    label = teacher.label_arrays("t/00000", [1], [0], [[12.0, 3.5]], [[4.5, 2.0]], [[0, 0]], fxy, fv)
    assert "may hide someone" in label.objects[0].reason


def test_oracle_is_deterministic_and_config_strict() -> None:
    rng = np.random.default_rng(0)
    n = 30
    args = (
        np.arange(n),
        rng.integers(0, 10, n),
        rng.uniform(-30, 30, (n, 2)),
        rng.uniform(0.5, 5, (n, 2)),
        rng.normal(0, 3, (n, 2)),
        *_straight_path(),
    )
    a = OracleTeacher().label_arrays("t/00001", *args)
    b = OracleTeacher().label_arrays("t/00001", *args)
    assert a == b
    assert [o.rank for o in a.objects] == list(range(1, n + 1))
    assert all(0.0 <= o.risk <= 1.0 for o in a.objects)
    with pytest.raises(ValidationError, match="horizon_sec"):
        OracleConfig.model_validate({"horizon_sec": 3.0})


# ------------------------------------------------------------------------------------------ rasteriser
def test_rasteriser_hot_cells_empty_zero_and_max_combination() -> None:
    m = rasterise_risk([[10.0, 0.0]], [[4.0, 2.0]], [0.0], [[0.0, 0.0]], [0.8], GRID)
    assert m.dtype == np.float32 and m.shape == GRID.shape
    i, j = np.floor(GRID.metric_to_index([10.0, 0.0])).astype(int)
    assert m[i, j] == pytest.approx(0.8)
    assert m.max() == pytest.approx(0.8)
    ie, je = np.floor(GRID.metric_to_index([-10.0, 10.0])).astype(int)
    assert m[ie, je] == 0.0
    assert ((m > 0).sum()) == pytest.approx(8 * 4, abs=8)  # the 4 x 2 m footprint at 0.5 m cells
    two = rasterise_risk(
        [[10.0, 0.0], [11.0, 0.0]], [[4.0, 2.0], [4.0, 2.0]], [0.0, 0.0], [[0, 0], [0, 0]], [0.8, 0.3], GRID
    )
    single = rasterise_risk([[11.0, 0.0]], [[4.0, 2.0]], [0.0], [[0, 0]], [0.3], GRID)
    np.testing.assert_array_equal(two, np.maximum(m, single))
    assert rasterise_risk(np.zeros((0, 2)), np.zeros((0, 2)), [], np.zeros((0, 2)), [], GRID).max() == 0.0


def test_rasteriser_spreads_along_velocity_not_backwards() -> None:
    # pedestrian at (5, 5) walking to the right (-y) at 2 m/s
    m = rasterise_risk([[5.0, 5.0]], [[0.6, 0.6]], [0.0], [[0.0, -2.0]], [1.0], GRID, horizon_s=2.0)

    def at(x: float, y: float) -> float:
        i, j = np.floor(GRID.metric_to_index([x, y])).astype(int)
        return float(m[i, j])

    assert at(5.0, 5.0) == pytest.approx(1.0)
    assert 0.0 < at(5.0, 3.0) < at(5.0, 4.0) <= 1.0  # decaying ahead
    assert at(5.0, 7.0) == 0.0  # nothing behind
    assert 0.0 < at(5.75, 3.5) < at(5.0, 3.5)  # Gaussian across the motion
    assert at(5.0, -3.0) == 0.0  # beyond speed * horizon


# ------------------------------------------------------------------------------------------ label folder
def test_saved_map_is_read_by_risk_map_target(tiny_dataset, tmp_path) -> None:
    from riskdistill.data.targets import RiskMapTarget

    ds = RecordedDataset(tiny_dataset)
    frame = ds[len(ds) // 2]
    teacher = OracleTeacher()
    label = teacher.label(frame)
    assert label.frame_id == frame.frame_id
    ann = frame.annotation
    assert {o.object_id for o in label.objects} == set(ann["actor_id"].tolist())
    risk = {o.object_id: o.risk for o in label.objects}
    grid = BevGrid.centered(32.0, 32.0, 0.5, x_offset_m=8.0)
    m = rasterise_risk(
        ann["actor_center_ego"][:, :2],
        ann["actor_size_lwh"][:, :2],
        ann["actor_yaw_ego"],
        ann["actor_velocity_ego"],
        np.array([risk[int(a)] for a in ann["actor_id"]]),
        grid,
    )
    path = save_risk_map(tmp_path / "risk", frame.frame_id, m, grid)
    assert path == tmp_path / "risk" / "maps" / f"{frame.frame_id}.npy"
    assert np.load(path).dtype == np.float16
    out = RiskMapTarget(tmp_path / "risk").build(frame, grid)["risk_map"]
    assert out.shape == (1, *grid.shape)
    np.testing.assert_allclose(out[0], m, atol=1e-3)
    with pytest.raises(Exception, match="grid"):
        RiskMapTarget(tmp_path / "risk").build(frame, BevGrid.centered(32.0, 32.0, 0.25))


def test_fast_construction_equals_validated_labels() -> None:
    """The oracle builds labels without pydantic validation (speed); they must equal validated ones."""
    rng = np.random.default_rng(5)
    fast, checked = OracleTeacher(), OracleTeacher(validate=True)
    cams = ("CAM_FRONT", "CAM_BACK")
    for k in range(40):
        n = int(rng.integers(0, 25))
        vis = rng.integers(0, 3, (n, 2)) * 40
        lo = rng.uniform(0, 100, (n, 2, 2))
        boxes = np.concatenate([lo, lo + rng.uniform(1, 30, (n, 2, 2))], axis=-1)
        boxes[vis == 0] = np.nan
        args = (
            rng.permutation(1000)[:n],
            rng.integers(0, 10, n),
            rng.uniform(-40, 40, (n, 2)),
            rng.uniform(0.4, 6, (n, 2)),
            rng.normal(0, 4, (n, 2)),
            *_straight_path(speed=float(rng.uniform(0, 10))),
        )
        a = fast.label_arrays(f"t/{k:05d}", *args, camera_names=cams, visible_px=vis, box2d=boxes)
        b = checked.label_arrays(f"t/{k:05d}", *args, camera_names=cams, visible_px=vis, box2d=boxes)
        assert a == b and a.model_dump_json() == b.model_dump_json()
        assert FrameLabel.model_validate(a.model_dump()) == a
        assert FrameLabel.model_validate_json(a.model_dump_json()) == a


def test_inputs_that_break_the_construction_are_validated_and_rejected() -> None:
    fxy, fv = _straight_path()
    # an actor with NaN geometry is refused with a clear error (never a silently empty label, never NaN)
    args = ([1, 2], [4, 4], [[np.nan, 0.0], [5.0, 0.0]], [[0.6, 0.6]] * 2, [[0, 0]] * 2, fxy, fv)
    for teacher in (OracleTeacher(), OracleTeacher(validate=True)):
        with pytest.raises(
            ValueError, match=r"frame 't/00000': center_xy has NaN or inf \(first at \[0, 0\]\)"
        ):
            teacher.label_arrays("t/00000", *args)
    with pytest.raises(ValidationError, match="object_id must be unique"):
        OracleTeacher().label_arrays(
            "t/00000", [1, 1], [4, 4], [[5, 0], [9, 0]], [[1, 1]] * 2, [[0, 0]] * 2, fxy, fv
        )
    m = rasterise_risk(
        [[np.nan, 0.0], [10.0, 0.0]], [[1, 1], [4, 2]], [0, 0], [[0, 0], [0, 0]], [1.0, 0.5], GRID
    )
    assert m.max() == pytest.approx(0.5)  # the non-finite object draws nothing, the other one is there


def test_boundary_risk_marks_the_road_edge_and_fades_outside() -> None:
    from riskdistill.teacher.rasterise import boundary_risk_map

    grid = BevGrid(x_min_m=-10.0, x_max_m=10.0, y_min_m=-10.0, y_max_m=10.0, resolution_m=1.0)
    road = np.zeros(grid.shape, dtype=np.float32)
    road[:, 8:12] = 1.0  # a 4 m wide road along x through the middle
    m = boundary_risk_map(road, grid, risk=0.6, width_m=1.5)
    assert np.all(m[:, 8:12] == 0.0)  # nothing on the road
    assert np.allclose(m[:, 7], 0.6) and np.allclose(m[:, 12], 0.6)  # touching the edge
    row = m[5, :8][::-1]  # moving away from the left edge
    assert np.all(np.diff(row) < 0) and row[-1] < 0.01
    assert not boundary_risk_map(np.zeros(grid.shape), grid, 0.6, 1.5).any()  # no road seen: no claim


def test_rasterise_label_with_boundary_risk_on_a_recorded_frame(tiny_dataset) -> None:
    from riskdistill.data.targets import BevOccupancyTarget
    from riskdistill.teacher.rasterise import RasterConfig, rasterise_label

    grid = BevGrid.preset("tiny")
    frame = RecordedDataset(tiny_dataset)[3]
    plain, _ = rasterise_label({}, frame.annotation, grid)
    edged, _ = rasterise_label({}, frame.annotation, grid, RasterConfig(boundary_risk=0.5))
    drivable = BevOccupancyTarget().build(frame, grid)["bev_occupancy"][3] > 0.5
    assert not plain.any()  # no objects: no risk
    assert drivable.any() and (~drivable).any()
    assert np.all(edged[drivable] == 0.0) and edged.max() == np.float32(0.5)
