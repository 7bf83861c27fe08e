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
from riskdistill.teacher.conflict import Scene
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
ROUTE = np.stack([np.arange(151.0), np.zeros(151)], axis=1)  # straight ahead, 1 m apart
STOPPED = (np.zeros((6, 2)), np.ones(6, dtype=bool))  # an expert future that stands still


def _straight_path(speed: float = 5.0, n: int = 8, dt: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([np.arange(1, n + 1) * speed * dt, np.zeros(n)], axis=1), np.ones(n, dtype=bool)


def _line(start, direction, step: float = 1.0, n: int = 32) -> np.ndarray:
    u = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    return np.asarray(start, dtype=np.float64) + u * (step * np.arange(n))[:, None]


def _scene_label(teacher: OracleTeacher, actors: list[dict], ego_speed: float = 8.0, **extra) -> FrameLabel:
    """Label of a frame on the straight ROUTE (limit 10 m/s) with ``actors``: dicts of cls, c (centre), size,
    v (velocity), optional yaw, path (points 1 m apart), accel, release_in, release_v."""
    n = len(actors)
    paths = np.stack([a.get("path", np.repeat(np.asarray(a["c"], float)[None], 32, 0)) for a in actors])
    privileged = {
        "route_xy": ROUTE,
        "route_limit_mps": np.full(151, 10.0),
        "path_xy": paths,
        "path_step_m": np.array([1.0 if "path" in a else 0.0 for a in actors]),
        "accel_mps2": np.array([a.get("accel", 0.0) for a in actors]),
        "release_in_m": np.array([a.get("release_in", np.nan) for a in actors]),
        "release_speed_mps": np.array([a.get("release_v", np.nan) for a in actors]),
        "is_walker": np.array([a["cls"] in (ActorClass.PEDESTRIAN, ActorClass.CYCLIST) for a in actors]),
    }
    return teacher.label_arrays(
        "t/00000",
        np.arange(1, n + 1),
        [int(a["cls"]) for a in actors],
        [a["c"] for a in actors],
        [a.get("size", [4.6, 1.9]) for a in actors],
        [a.get("v", [0.0, 0.0]) for a in actors],
        *STOPPED,
        yaw=[a.get("yaw", 0.0) for a in actors],
        ego_speed_mps=ego_speed,
        **(privileged | extra),
    )


def _risks(label: FrameLabel) -> dict[int, float]:
    return {o.object_id: o.risk for o in label.objects}


PED = ActorClass.PEDESTRIAN


def _crossing_ped(x: float, v: float = 1.5, y: float = 3.0) -> dict:
    return {"cls": PED, "c": [x, y], "size": [0.5, 0.5], "v": [0.0, -v], "yaw": -np.pi / 2,
            "path": _line([x, y], [0, -1])}  # fmt: skip


def test_the_route_is_driven_regardless_of_the_evasive_expert_future() -> None:
    """A pedestrian crossing 17 m ahead is the hazard even though the expert already stopped for it; a
    harmless oncoming car in the next lane is not (the issue's 0.17 vs 0.17)."""
    oncoming = {"cls": ActorClass.CAR, "c": [30.0, 3.5], "v": [-8.0, 0.0], "yaw": np.pi,
                "path": _line([30.0, 3.5], [-1, 0])}  # fmt: skip
    label = _scene_label(OracleTeacher(), [_crossing_ped(17.0), oncoming])
    risk = _risks(label)
    assert risk[1] > 0.7 and risk[2] < 0.2
    assert label.objects[0].object_id == 1 and "meets the ego path in" in label.objects[0].reason
    # without the route (old or imported data) the stopped future's direction is extended: same verdict
    fallback = OracleTeacher().label_arrays(
        "t/00000", [1], [int(PED)], [[17.0, 3.0]], [[0.5, 0.5]], [[0.0, -1.5]], *STOPPED, ego_speed_mps=8.0
    )
    assert fallback.objects[0].risk > 0.7


def test_risk_decays_with_time_to_conflict_and_distance() -> None:
    teacher = OracleTeacher()
    cone = ActorClass.TRAFFIC_CONE
    near, far, beyond = (
        _risks(_scene_label(teacher, [{"cls": cone, "c": [x, 0.0], "size": [0.4, 0.4]}]))[1]
        for x in (12.0, 30.0, 90.0)
    )
    assert near > far > 0.5 > beyond  # 1.0 s, 3.2 s, beyond the 6 s horizon at 8-10 m/s
    # walking faster meets the ego sooner (and nearer): riskier
    slow, fast = (_risks(_scene_label(teacher, [_crossing_ped(25.0, v, y=4.0)]))[1] for v in (1.3, 2.2))
    assert fast > slow
    # the same conflict for a cone, a car, a pedestrian: severity orders them
    r = [_risks(_scene_label(teacher, [{"cls": c, "c": [20.0, 0.0], "size": [0.5, 0.5]}]))[1]
         for c in (PED, ActorClass.CAR, cone)]  # fmt: skip
    assert r[0] > r[1] > r[2] > 0.5


def test_real_footprints_decide_what_is_in_the_way() -> None:
    teacher = OracleTeacher()
    ego = {"ego_length_m": 4.6, "ego_width_m": 1.9, "rear_to_center_m": 1.45}
    # the gap to a car ahead is measured from the ego's front bumper (rear axle + 1.45 + 2.3 m)
    label = _scene_label(teacher, [{"cls": ActorClass.CAR, "c": [10.0, 0.0], "size": [4.0, 1.8]}], **ego)
    assert "(4 m away" in label.objects[0].reason  # 10 - 2 - 3.75 = 4.25 m
    scores = teacher.score(
        [int(ActorClass.CAR)],
        Scene(
            ego_speed_mps=0.0,
            center_xy=np.array([[10.0, 0.0]]),
            size_lw=np.array([[4.0, 1.8]]),
            yaw=np.zeros(1),
            velocity_xy=np.zeros((1, 2)),
            route_xy=ROUTE,
            **ego,
        ),
    )
    assert scores.gap_now[0] == pytest.approx(4.25, abs=1e-9)
    # a parked car beside the lane: side gaps of 0.65 m (no conflict) and 0.35 m (in the way)
    beside, inside = (
        _risks(_scene_label(teacher, [{"cls": ActorClass.CAR, "c": [20.0, y], "size": [4.6, 1.8]}]))[1]
        for y in (-2.5, -2.2)
    )
    assert beside < 0.5 < inside


def test_predicted_motion_follows_the_actors_path() -> None:
    """A car in the next lane whose path changes into the ego lane is a hazard; on a straight path it is
    not, at the same speed (constant velocity would miss the cut-in)."""
    lc = np.stack([20.0 + np.arange(32.0), 3.5 * np.clip(1.0 - np.arange(32.0) / 12.0, 0.0, 1.0)], axis=1)
    car = {"cls": ActorClass.CAR, "c": [20.0, 3.5], "v": [3.0, 0.0]}
    cut_in = _risks(_scene_label(OracleTeacher(), [car | {"path": lc}]))[1]
    straight = _risks(_scene_label(OracleTeacher(), [car | {"path": _line([20.0, 3.5], [1, 0])}]))[1]
    assert cut_in > 0.5 > straight


def test_a_scenario_trigger_releases_a_waiting_pedestrian() -> None:
    waiting = _crossing_ped(20.0, v=0.0, y=3.0) | {"v": [0.0, 0.0]}
    released = _risks(_scene_label(OracleTeacher(), [waiting | {"release_in": 2.0, "release_v": 1.8}]))[1]
    unknown = _risks(_scene_label(OracleTeacher(), [waiting]))[1]
    assert released > 0.5 > unknown


def test_a_braking_lead_vehicle_becomes_the_hazard() -> None:
    lead = {"cls": ActorClass.CAR, "c": [20.0, 0.0], "v": [8.0, 0.0], "path": _line([20.0, 0.0], [1, 0])}
    cruising = _risks(_scene_label(OracleTeacher(), [lead], ego_speed=8.0, route_limit_mps=np.full(151, 8.0)))
    braking = _risks(
        _scene_label(
            OracleTeacher(), [lead | {"accel": -7.0}], ego_speed=8.0, route_limit_mps=np.full(151, 8.0)
        )
    )
    assert braking[1] > 0.5 > cruising[1]


def test_the_ego_stops_at_a_red_light_in_the_counterfactual() -> None:
    crossing = {"cls": ActorClass.CAR, "c": [25.0, 24.0], "v": [0.0, -9.0], "yaw": -np.pi / 2,
                "path": _line([25.0, 24.0], [0, -1])}  # fmt: skip
    green = _risks(_scene_label(OracleTeacher(), [crossing]))[1]
    red = _risks(_scene_label(OracleTeacher(), [crossing], stop_distance_m=12.0))[1]
    assert green > 0.5 > red


def test_parked_vehicles_beside_the_path_may_hide_someone() -> None:
    van = {"cls": ActorClass.VAN, "c": [15.0, -2.9], "size": [5.2, 2.1]}
    label = _scene_label(OracleTeacher(), [van, van | {"c": [-15.0, -2.9]}])
    risk = _risks(label)
    assert 0.1 < risk[1] < 0.5 and "may hide someone" in label.objects[0].reason
    assert risk[2] < 0.05  # behind the ego: nothing can step into its path from there


def test_a_vehicle_behind_the_lead_is_shielded_by_it() -> None:
    cars = [{"cls": ActorClass.CAR, "c": [15.0, 0.0]}, {"cls": ActorClass.CAR, "c": [25.0, 0.0]}]
    label = _scene_label(OracleTeacher(), cars)
    risk = _risks(label)
    assert risk[1] > 0.5 > risk[2] > 0.2
    assert "behind a nearer road user" in label.objects[1].reason


def test_only_a_predicted_conflict_scores_above_one_half() -> None:
    rng = np.random.default_rng(3)
    teacher = OracleTeacher()
    n_high = 0
    for _ in range(40):
        n = 25
        c = rng.uniform([-20, -15], [60, 15], (n, 2))
        heading = rng.uniform(-np.pi, np.pi, n)
        speed = rng.uniform(0, 8, n)
        scene = Scene(
            ego_speed_mps=float(rng.uniform(0, 10)), center_xy=c, size_lw=rng.uniform(0.4, 5, (n, 2)),
            yaw=heading, velocity_xy=np.stack([np.cos(heading), np.sin(heading)], 1) * speed[:, None],
            route_xy=ROUTE,
        )  # fmt: skip
        s = teacher.score(rng.integers(0, 10, n), scene)
        high = s.risk > 0.5
        assert np.all(np.isfinite(s.ttc[high]) | np.isfinite(s.ttc_if_stops[high]))
        assert np.all(s.s_occ <= 0.45 + 1e-12) and np.all(s.s_prox <= 0.25 + 1e-12)
        n_high += int(high.sum())
    assert n_high > 0


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
    assert OracleConfig(ttc_half_s=3.0).config_hash() != OracleConfig().config_hash()


def test_recorded_frames_are_labelled_with_their_privileged_keys(tiny_dataset) -> None:
    from riskdistill.data.format import DAGGER_ANNOTATION_KEY_NAMES, OPTIONAL_ANNOTATION_KEY_NAMES

    ds = RecordedDataset(tiny_dataset)
    teacher = OracleTeacher()
    for i in range(0, len(ds), max(len(ds) // 6, 1)):
        frame = ds[i]
        ann = frame.annotation
        assert set(OPTIONAL_ANNOTATION_KEY_NAMES) - set(DAGGER_ANNOTATION_KEY_NAMES) <= set(ann)
        assert not set(DAGGER_ANNOTATION_KEY_NAMES) & set(ann)  # an expert recording
        label = teacher.label(frame)
        assert label == teacher.label_annotation(frame.frame_id, ann, frame.ego.speed_mps)
        # an old data set without the privileged keys still labels (route from the recorded future)
        old = {k: v for k, v in ann.items() if k not in OPTIONAL_ANNOTATION_KEY_NAMES}
        fallback = teacher.label_annotation(frame.frame_id, old, frame.ego.speed_mps)
        assert {o.object_id for o in fallback.objects} == {o.object_id for o in label.objects}


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
    from scipy.ndimage import binary_erosion

    from riskdistill.data.targets import BevOccupancyTarget
    from riskdistill.teacher.rasterise import RasterConfig, drivable_cells, rasterise_label

    grid = BevGrid.preset("tiny")
    frame = RecordedDataset(tiny_dataset)[3]
    ann = frame.annotation
    plain, _ = rasterise_label({}, ann, grid, RasterConfig(boundary_risk=0.0))
    edged, _ = rasterise_label({}, ann, grid)  # boundary risk is on by default
    assert RasterConfig().boundary_risk == pytest.approx(0.35)
    road = drivable_cells(grid, ann["lane_left_boundary"], ann["lane_right_boundary"], ann["lane_n_points"])
    assert not plain.any()  # no objects, no boundary: no risk
    assert road.any() and (~road).any()
    assert np.all(edged[road] == 0.0) and edged.max() == np.float32(0.35)
    # the occupancy target's drivable channel (a PIL polygon fill) agrees up to a cell at the edges
    occ = BevOccupancyTarget().build(frame, grid)["bev_occupancy"][3] > 0.5
    assert np.all(edged[binary_erosion(occ)] == 0.0)
    assert (road != occ).sum() <= 0.1 * occ.sum()
    # objects scoring below RasterConfig.min_risk (1e-3) draw nothing; above it they do
    one = dict(ann, actor_id=np.array([7]), actor_center_ego=np.array([[10.0, 0.0, 0.7]]),
               actor_size_lwh=np.array([[4.6, 1.9, 1.5]]), actor_yaw_ego=np.zeros(1),
               actor_velocity_ego=np.zeros((1, 2)))  # fmt: skip
    off = RasterConfig(boundary_risk=0.0)
    assert not rasterise_label({7: 5e-4}, one, grid, off)[0].any()
    assert rasterise_label({7: 5e-4}, one, grid, RasterConfig(boundary_risk=0.0, min_risk=0.0))[0].max() > 0
    assert rasterise_label({7: 2e-3}, one, grid, off)[0].max() == np.float32(2e-3)
