"""Open-loop and risk-map metrics against hand-computed cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from riskdistill.evaluation.object_recall import object_recall_hits, recall_by_range
from riskdistill.evaluation.open_loop import (
    ActorBoxes,
    OpenLoopAccumulator,
    compute_box_collisions,
    compute_collision_at_horizons,
    compute_collision_rates,
    compute_iou_counts,
    compute_l2_per_sample,
    ego_box_corners,
    extrapolate_actors,
    future_actor_boxes,
    iou_from_counts,
    paired_l2_difference,
    plan_headings,
)
from riskdistill.evaluation.risk_metrics import (
    compute_auc,
    compute_path_risk,
    compute_risk_auc,
    compute_risk_kl,
    compute_risk_l1,
    compute_risk_metrics,
    compute_risk_pearson,
    path_corridor_mask,
)
from riskdistill.geometry import BevGrid


def straight(speed_mps: float, n: int = 6, dt: float = 0.5) -> np.ndarray:
    return np.stack([speed_mps * dt * np.arange(1, n + 1), np.zeros(n)], axis=1)


# ------------------------------------------------------------------------------------------ L2
def test_l2_vad_averages_up_to_t_and_uniad_takes_the_point() -> None:
    gt = straight(5.0)[None]
    pred = gt.copy()
    pred[0, :, 1] += np.arange(1, 7)  # lateral errors 1..6 m
    vad = compute_l2_per_sample(pred, gt)
    np.testing.assert_allclose(vad, [[1.5, 2.5, 3.5]])  # mean(1,2), mean(1..4), mean(1..6)
    uniad = compute_l2_per_sample(pred, gt, convention="uniad")
    np.testing.assert_allclose(uniad, [[2.0, 4.0, 6.0]])


def test_l2_respects_the_valid_mask() -> None:
    gt = np.zeros((2, 6, 2))
    pred = np.zeros((2, 6, 2))
    pred[:, :, 0] = [3.0, 4.0, 10.0, 10.0, 10.0, 10.0]
    valid = np.array([[True, True, False, False, False, False], [False] * 6])
    out = compute_l2_per_sample(pred, gt, valid)
    np.testing.assert_allclose(out[0], [3.5, 3.5, 3.5])
    assert np.isnan(out[1]).all()
    acc = OpenLoopAccumulator()
    acc.add_planning(["a/00000", "b/00000"], pred, gt, valid)
    res = acc.result()
    assert res["l2_1s"] == pytest.approx(3.5) and res["l2_avg"] == pytest.approx(3.5)
    assert res["n_samples"] == 2


def test_l2_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[N, T, 2\]"):
        compute_l2_per_sample(np.zeros((6, 2)), np.zeros((6, 2)))
    with pytest.raises(ValueError, match="waypoints"):
        compute_l2_per_sample(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))


# ------------------------------------------------------------------------------------------ collisions
def test_the_expert_plan_is_scored_only_where_the_frame_holds_one() -> None:
    """The expert's path at its target speed is scored like the student's driven plan: a plan of 4 m/s
    along x against a car that drove 4 m/s along x is exact; frames without a recorded plan are skipped."""
    from types import SimpleNamespace

    torch = pytest.importorskip("torch")
    from riskdistill.evaluation.open_loop import _add_expert_plan

    path = np.stack([np.arange(1.0, 21.0), np.zeros(20)], axis=1)  # a point every metre along x
    tg = SimpleNamespace(
        plan_path=torch.tensor(np.stack([path, path]), dtype=torch.float32),
        plan_speed_mps=torch.tensor([[4.0], [4.0]]),
        plan_valid=torch.tensor([[True], [False]]),
    )
    gt = np.stack([np.stack([2.0 * np.arange(1, 7), np.zeros(6)], axis=1)] * 2)  # 4 m/s: 2 m per 0.5 s
    gt[0, :, 1] = 1.0  # one metre to the left of the plan at every waypoint
    acc = OpenLoopAccumulator()
    _add_expert_plan(acc, ["a", "b"], tg, gt, np.ones((2, 6), dtype=bool))
    assert acc.frame_ids == ["a"]
    assert acc.result()["l2_2s"] == pytest.approx(1.0)
    _add_expert_plan(acc, ["c"], SimpleNamespace(plan_valid=None), gt[:1], np.ones((1, 6), dtype=bool))
    assert acc.frame_ids == ["a"]  # a data set recorded without plans adds nothing


def test_paired_l2_difference_is_the_metric_gap_with_routes_resampled() -> None:
    """Student minus baseline on the same frames: the point estimate is the difference of the two L2@2s
    metrics; the interval resamples whole routes, so one route's many frames count as one draw; frames scored
    on different samples are refused."""
    gt = np.zeros((6, 6, 2))
    valid = np.ones((6, 6), dtype=bool)
    ids = ["r1/0", "r1/1", "r1/2", "r1/3", "r2/0", "r3/0"]
    student, base = OpenLoopAccumulator(), OpenLoopAccumulator()
    err_s = np.array([0.5, 0.5, 0.5, 0.5, 1.0, 1.0])  # better than the baseline on r1 (4 frames) only
    err_b = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    student.add_planning(ids, gt + err_s[:, None, None] * np.array([1.0, 0.0]), gt, valid)
    base.add_planning(ids, gt + err_b[:, None, None] * np.array([1.0, 0.0]), gt, valid)
    d = paired_l2_difference(student, base)
    assert d["diff_m"] == pytest.approx(student.result()["l2_2s"] - base.result()["l2_2s"])
    assert d["diff_m"] == pytest.approx(-2.0 / 6.0)
    assert d["n_routes"] == 3 and d["n_samples"] == 6 and d["student_better_share"] == pytest.approx(4 / 6)
    # with r1 drawn or not: the mean ranges from 0 (no r1) to -0.5 (only r1), never beyond
    assert -0.5 <= d["ci_low"] < d["diff_m"] < d["ci_high"] <= 0.0
    same = paired_l2_difference(base, base)
    assert same["diff_m"] == 0.0 and same["ci_low"] == same["ci_high"] == 0.0
    other = OpenLoopAccumulator()
    other.add_planning(["x/0", *ids[1:]], gt, gt, valid)
    with pytest.raises(ValueError, match="different samples"):
        paired_l2_difference(student, other)


def test_plan_headings_follow_the_path_and_hold_when_stopped() -> None:
    xy = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0 + 1e-3], [0.0, 1.0 + 1e-3]])
    np.testing.assert_allclose(plan_headings(xy), [0.0, math.pi / 2, math.pi / 2, math.pi])
    np.testing.assert_allclose(plan_headings(np.zeros((3, 2))), [0.0, 0.0, 0.0])


def test_ego_box_centre_is_ahead_of_the_rear_axle() -> None:
    c = ego_box_corners([[0.0, 0.0]], [math.pi / 2], (4.0, 2.0, 1.5), (1.5, 0.0, 0.75))
    centre = c[0].mean(axis=0)
    np.testing.assert_allclose(centre, [0.0, 1.5], atol=1e-12)
    np.testing.assert_allclose(sorted(np.ptp(c[0], axis=0)), [2.0, 4.0], atol=1e-12)


def test_plan_collides_with_a_parked_car_at_1_5_s() -> None:
    # Ego 4 m long, centre 1.45 m ahead of the rear axle, driving at 5 m/s: centres at 3.95, 6.45, 8.95 ...
    # A parked car centred at x = 12 (4 m long) covers 10..14: the box at 1.5 s spans 6.95..10.95 (hit),
    # at 3 s 14.45..18.45 (past it: the plan drives through the car, so 1.5-2.5 s collide).
    plan = straight(5.0)
    ego = ego_box_corners(plan, plan_headings(plan), (4.0, 1.8, 1.5), (1.45, 0.0, 0.75))
    car = ActorBoxes(np.array([[12.0, 0.0]]), np.zeros(1), np.array([4.0]), np.array([1.8]))
    steps = compute_box_collisions(ego, [car] * 6)
    np.testing.assert_array_equal(steps, [False, False, True, True, True, False])
    np.testing.assert_array_equal(compute_collision_at_horizons(steps), [False, True, True])
    # A car one lane over (y = 3.5) is never hit.
    side = ActorBoxes(np.array([[12.0, 3.5]]), np.zeros(1), np.array([4.0]), np.array([1.8]))
    assert not compute_box_collisions(ego, [side] * 6).any()


def test_constant_velocity_extrapolation() -> None:
    b = extrapolate_actors([[10.0, 2.0]], [0.3], [[-2.0, 1.0]], [4.0], [2.0], 1.5)
    np.testing.assert_allclose(b.xy, [[7.0, 3.5]])
    np.testing.assert_allclose(b.yaw, [0.3])


def test_future_actor_boxes_use_the_recorded_frame_and_fall_back_per_actor() -> None:
    ann = {
        "actor_id": np.array([1, 2]),
        "actor_center_ego": np.array([[8.0, 0.0, 0.8], [0.0, 20.0, 0.8]]),
        "actor_yaw_ego": np.array([0.0, 0.0]),
        "actor_size_lwh": np.array([[4.0, 2.0, 1.6], [4.0, 2.0, 1.6]]),
        "actor_velocity_ego": np.array([[0.0, 0.0], [0.0, -4.0]]),
    }
    # 1 s later the ego is at world (5, 0) heading +90 deg and sees actor 1 one metre ahead; actor 2 is gone.
    future = {
        "actor_id": np.array([1]),
        "actor_center_ego": np.array([[1.0, 0.0, 0.8]]),
        "actor_yaw_ego": np.array([0.5]),
        "actor_size_lwh": np.array([[4.0, 2.0, 1.6]]),
        "actor_velocity_ego": np.array([[0.0, 0.0]]),
    }
    boxes, used = future_actor_boxes(
        ann, np.array([0.0, 0.0, 0.0]), 1.0, (future, np.array([5.0, 0.0, np.pi / 2]))
    )
    assert used
    np.testing.assert_allclose(boxes.xy, [[5.0, 1.0], [0.0, 16.0]], atol=1e-12)
    np.testing.assert_allclose(boxes.yaw, [0.5 + np.pi / 2, 0.0])
    cv, used = future_actor_boxes(ann, np.zeros(3), 1.0, None)
    assert not used
    np.testing.assert_allclose(cv.xy, [[8.0, 0.0], [0.0, 16.0]])


def test_collision_rate_skips_samples_whose_ground_truth_collides() -> None:
    pred = np.array([[False, True, True], [False, False, True], [True, True, True]])
    gt = np.array([[False, False, False], [False, False, False], [False, True, True]])
    rates = compute_collision_rates(pred, gt)
    assert rates["collision_rate_pct_1s"] == pytest.approx(100.0 / 3.0)
    assert rates["collision_rate_pct_2s"] == pytest.approx(50.0)  # sample 3 skipped
    assert rates["collision_rate_pct_3s"] == pytest.approx(100.0)
    assert compute_collision_rates(pred[2:], gt[2:])["collision_rate_pct_3s"] is None


# ------------------------------------------------------------------------------------------ perception
def test_iou_per_channel() -> None:
    target = np.zeros((1, 2, 2, 2))
    target[0, 0] = [[1, 1], [0, 0]]
    logits = np.full((1, 2, 2, 2), -5.0)
    logits[0, 0] = [[5, -5], [5, -5]]  # predicts cells (0,0) and (1,0): intersection 1, union 3
    counts = compute_iou_counts(logits, target)
    np.testing.assert_array_equal(counts, [[1, 3], [0, 0]])
    iou = iou_from_counts(counts, ("vehicle", "drivable"))
    assert iou["iou_vehicle"] == pytest.approx(1 / 3)
    assert iou["iou_drivable"] is None and iou["iou_mean"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------------------ risk maps
def test_risk_l1_and_kl_by_hand() -> None:
    teacher = np.array([[1.0, 0.0]])
    pred = np.array([[0.5, 0.5]])
    assert compute_risk_l1(pred, teacher) == pytest.approx(0.5)
    # tau = 1: P_teacher = softmax(1, 0) = (e, 1) / (e + 1); P_pred uniform (1/2, 1/2)
    pt = np.array([math.e, 1.0]) / (math.e + 1.0)
    expected = float(np.sum(pt * np.log(pt / 0.5)))
    assert compute_risk_kl(pred, teacher, temperature=1.0) == pytest.approx(expected)
    assert compute_risk_kl(teacher, teacher) == pytest.approx(0.0, abs=1e-12)


def test_risk_pearson_and_auc() -> None:
    teacher = np.array([[[0.0, 0.2], [0.6, 1.0]]])
    assert compute_risk_pearson(0.5 * teacher + 0.1, teacher) == pytest.approx(1.0)
    assert compute_risk_pearson(1.0 - teacher, teacher) == pytest.approx(-1.0)
    assert compute_risk_pearson(np.zeros_like(teacher), teacher) is None  # constant prediction
    assert compute_risk_auc(teacher, teacher) == pytest.approx(1.0)
    assert compute_risk_auc(1.0 - teacher, teacher) == pytest.approx(0.0)
    # scores (pos: 0.8, 0.4; neg: 0.4, 0.1): pairs 0.8>0.4, 0.8>0.1, 0.4=0.4 (half), 0.4>0.1 -> 3.5 / 4
    assert compute_auc([0.8, 0.4, 0.4, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert compute_auc([0.1, 0.2], [0, 0]) is None
    m = compute_risk_metrics(teacher, teacher)
    assert m["risk_l1"] == 0.0 and m["risk_auc"] == pytest.approx(1.0)


def test_accumulator_pools_risk_over_batches_like_one_stack() -> None:
    rng = np.random.default_rng(0)
    pred = rng.random((5, 1, 4, 4))
    teacher = rng.random((5, 1, 4, 4))
    acc = OpenLoopAccumulator()
    acc.add_risk(pred[:2], teacher[:2])
    acc.add_risk(pred[2:], teacher[2:])
    res = acc.result()
    ref = compute_risk_metrics(pred, teacher)
    for k in ("risk_l1", "risk_kl", "risk_pearson", "risk_auc"):
        assert res[k] == pytest.approx(ref[k])


def test_object_recall_counts_each_shown_object_once_by_its_channel_and_range() -> None:
    """A car seen on one cell of its footprint counts as seen; a pedestrian the head misses does not; a
    hidden cone (no camera pixels), an off-grid truck and an actor without a channel are not counted."""
    grid = BevGrid(x_min_m=-10.0, x_max_m=40.0, y_min_m=-10.0, y_max_m=10.0, resolution_m=1.0)
    ann = {
        # car at 5 m, pedestrian at 25 m, hidden cone, truck behind the grid, an unknown class (99)
        "actor_class": np.array([0, 4, 6, 2, 99]),
        "actor_center_ego": np.array([[5.0, 0, 0], [25.0, 3, 0], [12.0, 0, 0], [-30.0, 0, 0], [8.0, 5, 0]]),
        "actor_size_lwh": np.array([[4.0, 2.0, 1.5], [0.5, 0.5, 1.8], [0.5, 0.5, 1], [8, 2.5, 3], [1, 1, 1]]),
        "actor_yaw_ego": np.zeros(5),
        "actor_visible_px": np.array([[40, 0], [3, 0], [0, 0], [10, 0], [5, 0]]),
    }
    logits = np.full((5, *grid.shape), -5.0)
    r, c = grid.metric_to_cell([6.0, 0.5])
    logits[0, r, c] = 5.0  # one cell of the car's footprint in the vehicle channel
    r, c = grid.metric_to_cell([25.0, 3.0])
    logits[0, r, c] = 5.0  # the pedestrian's cell, but in the vehicle channel: not seen as a VRU
    hits = object_recall_hits(logits, ann, grid)
    assert [(g, seen, road) for g, _, seen, road in hits] == [(0, True, None), (1, False, None)]
    assert [d for _, d, *_ in hits] == pytest.approx([5.0, math.hypot(25.0, 3.0)])
    logits[1, r, c] = 0.1  # sigmoid 0.52 > 0.5
    assert object_recall_hits(logits, ann, grid)[1][2] is True
    # only camera 1 counts: nothing shows there but the truck, which is off the grid
    assert object_recall_hits(logits, ann, grid, visible_in=[1]) == []
    ann_cam1 = {**ann, "actor_visible_px": ann["actor_visible_px"][:, ::-1]}  # the pixels in camera 1
    assert object_recall_hits(logits, ann_cam1, grid, visible_in=[1]) == object_recall_hits(logits, ann, grid)
    table = recall_by_range([*hits, (1, 3.0, True), (0, 75.0, False)])
    assert table["vehicle"]["0-10"] == {"objects": 1, "recall": 1.0}
    assert table["vehicle"]["30+"] == {"objects": 1, "recall": 0.0}  # beyond the last edge: the last bin
    assert table["vulnerable"]["0-10"] == {"objects": 1, "recall": 1.0}
    assert table["vulnerable"]["20-30"] == {"objects": 1, "recall": 0.0}
    assert table["static_obstacle"]["10-20"] == {"objects": 0, "recall": None}
    from riskdistill.contracts.batch import BEV_CHANNELS
    from riskdistill.data.targets import OCCUPANCY_CHANNEL_OF_CLASS
    from riskdistill.evaluation.object_recall import ACTOR_CHANNELS

    assert BEV_CHANNELS[:3] == ACTOR_CHANNELS and set(OCCUPANCY_CHANNEL_OF_CLASS.values()) == {0, 1, 2}


def test_object_recall_splits_road_users_on_the_carriageway_from_those_beside_it() -> None:
    """With the frame's drivable area, each hit says whether the object's centre is on the road: a pedestrian
    crossing the carriageway (the hazard) is counted apart from one on the pavement."""
    from riskdistill.evaluation.object_recall import recall_on_road
    from riskdistill.evaluation.open_loop import OpenLoopAccumulator

    grid = BevGrid(x_min_m=-10.0, x_max_m=40.0, y_min_m=-10.0, y_max_m=10.0, resolution_m=1.0)
    ann = {  # pedestrians at 8 m on the road, at 8 m on the pavement (y = 6), a car on the road at 15 m
        "actor_class": np.array([4, 4, 0]),
        "actor_center_ego": np.array([[8.0, 0.5, 0], [8.0, 6.5, 0], [15.0, -0.5, 0]]),
        "actor_size_lwh": np.array([[0.5, 0.5, 1.8], [0.5, 0.5, 1.8], [4.0, 2.0, 1.5]]),
        "actor_yaw_ego": np.zeros(3),
        "actor_visible_px": np.array([[30], [30], [200]]),
    }
    xy = grid.cell_centers()
    road = np.abs(xy[..., 1]) < 4.0  # a carriageway 8 m wide
    logits = np.full((5, *grid.shape), -5.0)
    logits[1][np.hypot(xy[..., 0] - 8.0, xy[..., 1] - 6.5) < 1.0] = (
        5.0  # it sees the pedestrian beside the road
    )
    logits[0][np.hypot(xy[..., 0] - 15.0, xy[..., 1] + 0.5) < 1.0] = 5.0  # and the car
    hits = object_recall_hits(logits, ann, grid, drivable=road)
    assert [(g, seen, on) for g, _, seen, on in hits] == [(1, False, True), (1, True, False), (0, True, True)]
    table = recall_on_road(hits)
    on, off = table["vulnerable"]["on_road"], table["vulnerable"]["off_road"]
    assert (on["objects"], on["recall"], off["objects"], off["recall"]) == (1, 0.0, 1, 1.0)
    assert on["by_range"]["0-10"] == {"objects": 1, "recall": 0.0}  # 8.0 m
    assert off["by_range"]["10-20"] == {"objects": 1, "recall": 1.0}  # 10.3 m
    assert off["by_range"]["0-10"] == {"objects": 0, "recall": None}
    assert (
        table["vehicle"]["on_road"]["recall"] == 1.0 and table["static_obstacle"]["off_road"]["objects"] == 0
    )
    acc = OpenLoopAccumulator()
    acc.object_hits.extend(object_recall_hits(logits, ann, grid))  # without the drivable area: no split
    assert "occupancy_recall_on_road" not in acc.result()
    acc.object_hits.extend(hits)
    res = acc.result()
    assert res["occupancy_recall_on_road"] == table  # hits without the flag are left out of it
    by_range = res["occupancy_recall_by_range"]["vulnerable"]  # 8.0 and 10.3 m away, counted twice
    assert by_range["0-10"] == {"objects": 2, "recall": 0.0} and by_range["10-20"] == {
        "objects": 2,
        "recall": 1.0,
    }


def test_path_risk_is_the_max_inside_the_corridor() -> None:
    grid = BevGrid(x_min_m=-2.0, x_max_m=8.0, y_min_m=-5.0, y_max_m=5.0, resolution_m=1.0)
    risk = np.zeros(grid.shape)
    r, c = grid.metric_to_cell([5.5, 0.5])
    risk[r, c] = 0.7  # on the straight path
    r, c = grid.metric_to_cell([5.5, 3.5])
    risk[r, c] = 0.9  # 3.5 m to the left: outside a 1 m corridor
    path = [[3.0, 0.0], [6.0, 0.0]]
    assert compute_path_risk(risk, grid, path, half_width_m=1.0) == pytest.approx(0.7)
    assert compute_path_risk(risk, grid, path, half_width_m=4.0) == pytest.approx(0.9)
    mask = path_corridor_mask(grid, path, 0.5)
    # cells whose centre lies within 0.5 m of the segment (0,0)-(6,0): y centres +-0.5, x 0.5..5.5 (+ ends)
    assert mask.sum() == 2 * 6
    with pytest.raises(ValueError, match="grid"):
        compute_path_risk(np.zeros((3, 3)), grid, path)


def _corridor_by_brute_force(grid: BevGrid, path: np.ndarray, half_width_m: float) -> np.ndarray:
    """Every cell's distance to every segment of the path (from the ego origin), the definition itself."""
    pts = np.concatenate([np.zeros((1, 2)), np.asarray(path, dtype=np.float64).reshape(-1, 2)])
    centres = grid.cell_centers().reshape(-1, 2)
    best = ((centres - pts[0]) ** 2).sum(axis=1)
    for a, b in itertools.pairwise(pts):
        ab = b - a
        u = np.clip(((centres - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        best = np.minimum(best, ((centres - (a + u[:, None] * ab)) ** 2).sum(axis=1))
    return (best <= half_width_m**2).reshape(grid.shape)


def test_path_corridor_measures_only_near_cells_and_agrees_with_every_cell() -> None:
    """The corridor measures the cells near the path only: the same mask as measuring every cell, for
    paths inside, across and outside the grid and corridors of zero to 4 m."""
    grid = BevGrid.preset("tiny")
    rng = np.random.default_rng(0)
    marked = 0
    for i in range(300):
        path = np.cumsum(rng.normal(0.0, 3.0, (int(rng.integers(0, 8)), 2)), axis=0)
        if i % 3 == 0:
            path = path + rng.normal(0.0, 20.0, 2)  # far off, partly or wholly outside the grid
        for half_width_m in (0.0, 0.5, 1.5, 4.0):
            want = _corridor_by_brute_force(grid, path, half_width_m)
            np.testing.assert_array_equal(path_corridor_mask(grid, path, half_width_m), want)
            marked += int(want.sum())
    assert marked > 10_000  # the paths do cross the grid


def test_recorded_future_boxes_on_the_tiny_dataset(tiny_dataset) -> None:
    from riskdistill.data.storage import RecordedDataset
    from riskdistill.evaluation.open_loop import FutureFrameIndex, sample_collisions

    records = RecordedDataset(tiny_dataset)
    index = FutureFrameIndex(records)
    fids = records.table.column("frame_id").to_pylist()
    fid = next(f for f in fids if len(records.frame(index.by_frame_id[f]).annotation["actor_id"]))
    ann = records.frame(index.by_frame_id[fid]).annotation
    assert index.future(fid, 0.5) is not None  # recorded every 5 steps: the frame 0.5 s later exists
    gt, yaw = ann["future_xy"][:6], ann["future_yaw"][:6]
    pred_hit, gt_hit, recorded = sample_collisions(index, fid, gt, gt, yaw)
    assert recorded >= 1 and (pred_hit == gt_hit).all()  # the expert's own future as the plan
    # a plan that jumps onto a standing actor collides at 0.5 s
    a = int(np.argmin(np.linalg.norm(ann["actor_velocity_ego"], axis=1)))
    assert np.linalg.norm(ann["actor_velocity_ego"][a]) < 0.1
    onto = np.repeat(ann["actor_center_ego"][a : a + 1, :2].astype(np.float64), 6, axis=0)
    hit, _, _ = sample_collisions(index, fid, onto, gt, yaw, horizons_s=(0.5,))
    assert hit[0]
