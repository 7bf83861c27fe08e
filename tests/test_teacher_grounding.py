"""Grounding: ground-truth objects, detection-to-3D matching, the tiny OWLv2 detector, and IPM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from riskdistill.data.storage import RecordedDataset
from riskdistill.geometry import BevGrid, T_ego_from_cam_from_pose, intrinsics_from_fov, project_points
from riskdistill.teacher.grounding import (
    Detection,
    box_iou,
    ground_truth_objects,
    match_boxes,
    match_detections,
    project_objects,
)
from riskdistill.teacher.ipm import project_heatmaps_to_bev
from riskdistill.types import ActorClass


@pytest.fixture(scope="module")
def frames(tiny_dataset):
    ds = RecordedDataset(tiny_dataset)
    return [ds[i] for i in range(0, len(ds), 7)]


# ------------------------------------------------------------------------------------------ ground truth
def test_ground_truth_objects_follow_the_instance_masks(frames) -> None:
    n_seen = 0
    for frame in frames:
        ann = frame.annotation
        cams = [str(c) for c in ann["camera_names"]]
        objs = ground_truth_objects(frame, min_visible_px=20)
        vis = ann["actor_visible_px"]
        want = {int(a) for a, v in zip(ann["actor_id"], vis, strict=True) if v.max() >= 20}
        assert {o.object_id for o in objs} == want
        assert [o.distance_m for o in objs] == sorted(o.distance_m for o in objs)
        for o in objs:
            a = int(np.flatnonzero(ann["actor_id"] == o.object_id)[0])
            best = int(np.argmax(vis[a]))
            assert o.camera == cams[best] and o.camera in o.cameras
            assert set(o.cameras) == {cams[j] for j in np.flatnonzero(vis[a] >= 20)}
            np.testing.assert_allclose(o.box2d, ann["actor_box2d"][a, best])
            assert o.cls == ActorClass(int(ann["actor_class"][a])).name.lower()
            assert o.confidence == 1.0 and o.center_xy_m == pytest.approx(ann["actor_center_ego"][a, :2])
            assert o.distance_m == pytest.approx(math.hypot(*ann["actor_center_ego"][a, :2]))
            assert o.size_lw_m == pytest.approx(ann["actor_size_lwh"][a, :2])
            n_seen += 1
        # a stricter visibility threshold keeps a subset
        assert {o.object_id for o in ground_truth_objects(frame, min_visible_px=200)} <= want
    assert n_seen > 0


def test_closing_speed_sign_on_a_constructed_annotation() -> None:
    ann = {
        "actor_id": np.array([1, 2]),
        "actor_class": np.array([4, 0]),
        "actor_center_ego": np.array([[10.0, 0.0, 0.9], [-10.0, 0.0, 0.8]]),
        "actor_size_lwh": np.array([[0.6, 0.6, 1.8], [4.5, 2.0, 1.6]]),
        "actor_yaw_ego": np.array([0.0, 0.0]),
        "actor_velocity_ego": np.array([[-2.0, 0.0], [0.0, 0.0]]),
        "actor_visible_px": np.array([[50], [30]]),
        "actor_box2d": np.array([[[10.0, 10.0, 20.0, 40.0]], [[0.0, 0.0, 5.0, 5.0]]]),
        "camera_names": np.array(["CAM_FRONT"]),
    }
    a, b = ground_truth_objects(ann, ego_speed_mps=5.0)
    assert a.object_id == 1 and a.closing_speed_mps == pytest.approx(7.0)  # 2 m/s + the ego's 5 m/s
    assert b.object_id == 2 and b.closing_speed_mps == pytest.approx(-5.0)  # the ego drives away from it


# ------------------------------------------------------------------------------------------ matching
def test_box_iou_hand_computed() -> None:
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30], [np.nan] * 4])
    np.testing.assert_allclose(iou, [[50 / 150, 0.0, 0.0]])


def test_match_boxes_nearest_centre_with_iou_gate() -> None:
    # objects at x = 0 and x = 10 (centres), with overlapping projected boxes
    proj_c = np.array([[0.0, 0.0], [10.0, 0.0]])
    proj_b = np.array([[-20.0, -20.0, 20.0, 20.0], [-10.0, -20.0, 30.0, 20.0]])
    # detection centres x = 6 and x = -6: distances d0-o0 6, d0-o1 4, d1-o0 6, d1-o1 16
    dets = np.array([[-2.0, -10.0, 14.0, 10.0], [-14.0, -10.0, 2.0, 10.0]])
    assert match_boxes(dets, proj_c, proj_b, method="greedy").tolist() == [1, 0]
    assert match_boxes(dets, proj_c, proj_b, method="hungarian").tolist() == [1, 0]  # 4 + 6 < 6 + 16
    # the IoU gate: far from every projected box -> unmatched, whatever the distance
    assert match_boxes([[100.0, 100.0, 110.0, 110.0]], proj_c, proj_b).tolist() == [-1]
    assert match_boxes([[-2.0, -2.0, 2.0, 2.0]], proj_c, proj_b, iou_min=0.5).tolist() == [-1]  # IoU 0.01
    assert match_boxes([[-2.0, -2.0, 2.0, 2.0]], proj_c, proj_b, iou_min=0.0).tolist() == [0]
    # a distance gate: centre (8, 0) is 2 px from object 1
    assert match_boxes([[6.0, -2.0, 10.0, 2.0]], proj_c, proj_b, iou_min=0.0, max_center_px=1.0).tolist() == [
        -1
    ]
    assert match_boxes([[6.0, -2.0, 10.0, 2.0]], proj_c, proj_b, iou_min=0.0, max_center_px=3.0).tolist() == [
        1
    ]
    # an object behind the camera (NaN centre) is never matched; the spare detection stays unmatched
    nan_c = np.array([[np.nan, np.nan], [10.0, 0.0]])
    assert match_boxes(dets, nan_c, proj_b, iou_min=0.0).tolist() == [1, -1]
    assert match_boxes(np.zeros((0, 4)), proj_c, proj_b).tolist() == []
    with pytest.raises(ValueError, match="hungarian"):
        match_boxes(dets, proj_c, proj_b, method="best")


def test_hungarian_minimises_total_distance_where_greedy_does_not() -> None:
    # objects at x = 0 and 3, detection centres at 1.6 and 4.9: greedy takes the nearest pair first,
    # det0-obj1 (1.4), leaving det1-obj0 (4.9): total 6.3; Hungarian: det0-obj0 (1.6) + det1-obj1 (1.9) = 3.5
    proj_c = np.array([[0.0, 0.0], [3.0, 0.0]])
    proj_b = np.array([[-50.0, -50.0, 50.0, 50.0]] * 2)
    dets = np.array([[1.1, -1.0, 2.1, 1.0], [4.4, -1.0, 5.4, 1.0]])
    assert match_boxes(dets, proj_c, proj_b, iou_min=0.0, method="greedy").tolist() == [1, 0]
    assert match_boxes(dets, proj_c, proj_b, iou_min=0.0).tolist() == [0, 1]


def test_match_detections_links_projected_boxes_to_their_actors(frames) -> None:
    frame = max(frames, key=lambda f: len(ground_truth_objects(f)))
    ann = frame.annotation
    cams = [str(c) for c in ann["camera_names"]]
    hw = tuple(int(v) for v in ann["image_hw"])
    gt = ground_truth_objects(frame)
    assert gt, "the fixture frame should see some actors"
    dets = []
    for o in gt:  # a detection on each visible actor: its projected 3D box in its best camera
        ci = cams.index(o.camera)
        _, boxes = project_objects(ann, ci, hw)
        a = int(np.flatnonzero(ann["actor_id"] == o.object_id)[0])
        dets.append(Detection(o.camera, tuple(boxes[a]), "thing", 0.8))
    dets.append(Detection(cams[0], (0.0, 0.0, 1.0, 1.0), "ghost", 0.3))
    out = match_detections(dets, frame, iou_min=0.3)
    matched = [o for o in out if o.object_id >= 0]
    assert {o.object_id for o in matched} == {o.object_id for o in gt}
    assert out[-1].object_id == -1 and out[-1].cls == "ghost" and out[-1].extras["unmatched"]
    for o in matched:
        g = next(x for x in gt if x.object_id == o.object_id)
        assert o.center_xy_m == g.center_xy_m and o.cls == "thing" and o.extras["gt_cls"] == g.cls
    # two detections of one actor in one camera: the nearer one is matched, the other is left over
    o0 = gt[0]
    dup = [dets[0], Detection(o0.camera, tuple(b + 0.5 for b in dets[0].box2d), "thing", 0.95)]
    first, second = match_detections(dup, frame, iou_min=0.3)
    assert first.object_id == o0.object_id and first.confidence == 0.8 and second.object_id == -1
    # the same actor detected in two cameras is one object: the best detection's box, both cameras
    found = False
    for f in frames:
        a_ann = f.annotation
        for a, aid in enumerate(a_ann["actor_id"].tolist()):
            singles = []
            for ci, cam in enumerate(cams):
                box = project_objects(a_ann, ci, hw)[1][a]
                if np.all(np.isfinite(box)):
                    d = Detection(cam, tuple(box), "thing", 0.5 + 0.1 * ci)
                    if [o.object_id for o in match_detections([d], f, iou_min=0.3)] == [aid]:
                        singles.append(d)
            if len(singles) >= 2:
                (one,) = match_detections(singles[:2], f, iou_min=0.3)
                assert one.object_id == aid and one.cameras == tuple(sorted(d.camera for d in singles[:2]))
                assert one.confidence == max(d.score for d in singles[:2])
                found = True
                break
        if found:
            break
    assert found, "no actor of the fixture projects into two cameras"
    with pytest.raises(ValueError, match="unknown camera"):
        match_detections([Detection("CAM_NOPE", (0, 0, 1, 1), "car", 1.0)], frame)


# ------------------------------------------------------------------------------------------ detector
def test_tiny_owlv2_detections_go_through_matching(frames, tmp_path) -> None:
    from riskdistill.teacher.detector import (
        DetectorConfig,
        OpenVocabDetector,
        build_tiny_owlv2,
    )

    model_dir = build_tiny_owlv2(tmp_path / "owlv2")
    frame = frames[len(frames) // 2]
    low = OpenVocabDetector(DetectorConfig(model_dir=str(model_dir), score_threshold=0.0, max_per_camera=100))
    dets = low.detect(frame)
    _assert_valid_detections(dets, frame)
    # thresholds filter monotonically; a cap per camera holds
    thr = float(np.median([d.score for d in dets]))
    high = OpenVocabDetector(
        DetectorConfig(model_dir=str(model_dir), score_threshold=thr, max_per_camera=100)
    )
    high_dets = high.detect(frame)
    assert all(d.score > thr for d in high_dets) and set(high_dets) <= set(dets)
    capped = OpenVocabDetector(
        DetectorConfig(model_dir=str(model_dir), score_threshold=0.0, max_per_camera=2)
    )
    per_cam = [sum(d.camera == c for d in capped.detect(frame)) for c in frame.camera_names]
    assert max(per_cam) <= 2
    # grounding = detect + match_detections; ids are annotation ids (matched) or negative (unmatched)
    objs = low.ground(frame)
    assert objs == match_detections(dets, frame)
    ids = set(frame.annotation["actor_id"].tolist())
    assert all(o.object_id in ids or o.object_id < 0 for o in objs)
    assert len(objs) <= len(dets)
    with pytest.raises(FileNotFoundError):
        OpenVocabDetector(DetectorConfig(model_dir=str(tmp_path / "missing")))


def test_tiny_grounding_dino_detections_go_through_matching(frames, tmp_path) -> None:
    from riskdistill.teacher.build import make_vlm_teacher
    from riskdistill.teacher.detector import (
        DEFAULT_CLASSES,
        DetectorConfig,
        GroundingDinoDetector,
        build_detector,
        build_tiny_grounding_dino,
        build_tiny_owlv2,
        caption_and_class_tokens,
        detector_kind,
    )

    model_dir = build_tiny_grounding_dino(tmp_path / "gdino")
    cfg = DetectorConfig(model_dir=str(model_dir), score_threshold=0.0, max_per_camera=100)
    assert detector_kind(cfg) == "grounding_dino"  # from config.json's model_type
    low = build_detector(cfg)
    assert isinstance(low, GroundingDinoDetector)
    # the caption and the tokens of each class (a class's own words, by character offsets)
    caption, tokens = caption_and_class_tokens(DEFAULT_CLASSES, low.processor.tokenizer)
    assert caption == ". ".join(DEFAULT_CLASSES) + "." and caption.startswith("car. van. truck. ")
    ids = low.processor.tokenizer(caption)["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and ids.count(1012) == len(DEFAULT_CLASSES)
    words = [low.processor.tokenizer.decode([ids[i]]) for i in tokens[DEFAULT_CLASSES.index("open car door")]]
    assert words == ["open", "car", "door"] and len(tokens[0]) == 1
    frame = frames[len(frames) // 2]
    dets = low.detect(frame)
    _assert_valid_detections(dets, frame)
    assert len({d.label for d in dets}) > 1  # classes come from the token logits, not a fixed label
    # thresholds filter monotonically; a cap per camera holds; the same model gives the same detections
    thr = float(np.median([d.score for d in dets]))
    high = build_detector(DetectorConfig(model_dir=str(model_dir), score_threshold=thr, max_per_camera=100))
    high_dets = high.detect(frame)
    assert high_dets and all(d.score > thr for d in high_dets) and set(high_dets) <= set(dets)
    capped = build_detector(DetectorConfig(model_dir=str(model_dir), score_threshold=0.0, max_per_camera=2))
    assert max(sum(d.camera == c for d in capped.detect(frame)) for c in frame.camera_names) <= 2
    # grounding = detect + match_detections; ids are annotation ids (matched) or negative (unmatched)
    objs = low.ground(frame)
    assert objs == match_detections(dets, frame)
    actor_ids = set(frame.annotation["actor_id"].tolist())
    assert all(o.object_id in actor_ids or o.object_id < 0 for o in objs)
    # the VLM teacher builds either detector from a DetectorConfig dict
    teacher = make_vlm_teacher({"backend": {"type": "openai", "model": "m"}}, {"model_dir": str(model_dir)})
    assert isinstance(teacher.grounder, GroundingDinoDetector)
    owl = build_tiny_owlv2(tmp_path / "owlv2")
    assert detector_kind(DetectorConfig(model_dir=str(owl))) == "owlv2"
    with pytest.raises(FileNotFoundError):
        build_detector(DetectorConfig(model_dir=str(tmp_path / "missing")))
    with pytest.raises(FileNotFoundError):
        GroundingDinoDetector(DetectorConfig(model_dir=str(tmp_path / "missing"), kind="grounding_dino"))


# ------------------------------------------------------------------------------------------ IPM
def test_ipm_puts_a_painted_ground_point_at_its_bev_cell() -> None:
    hw = (96, 160)
    K = intrinsics_from_fov(hw[1], hw[0], 90.0)
    front = T_ego_from_cam_from_pose(1.5, 0.0, 1.6, 0.0, pitch=math.radians(10)).matrix()
    back = T_ego_from_cam_from_pose(0.0, 0.0, 1.6, math.pi, pitch=math.radians(10)).matrix()
    grid = BevGrid.centered(40.0, 20.0, 0.5, x_offset_m=10.0)
    target = np.array([*grid.cell_to_metric(grid.metric_to_cell([12.1, 2.1])), 0.0])  # a cell centre
    uv, _, ok = project_points(target[None], K, np.linalg.inv(front))
    assert ok[0]
    vv, uu = np.mgrid[0 : hw[0], 0 : hw[1]] + 0.5
    blob = np.exp(-((uu - uv[0, 0]) ** 2 + (vv - uv[0, 1]) ** 2) / (2 * 1.5**2))
    heat = np.stack([blob, np.zeros(hw)])
    bev = project_heatmaps_to_bev(heat, np.stack([K, K]), np.stack([front, back]), grid)
    assert bev.shape == grid.shape and bev.dtype == np.float32
    peak = np.unravel_index(np.argmax(bev), bev.shape)
    np.testing.assert_allclose(grid.cell_to_metric(peak), target[:2], atol=1e-9)
    from scipy.ndimage import map_coordinates  # bilinear between pixel centres (u + 0.5, v + 0.5)

    want = map_coordinates(blob, [[uv[0, 1] - 0.5], [uv[0, 0] - 0.5]], order=1)[0]
    assert bev.max() == pytest.approx(want, rel=1e-5) and want > 0.9
    behind = grid.metric_to_cell([-5.0, 0.0])
    assert bev[tuple(behind)] == 0.0  # the back camera's heatmap is empty; the front one cannot see there
    # a heatmap at half the image resolution gives the same peak (K scaled with image_hw)
    half = heat[:, ::2, ::2]
    bev2 = project_heatmaps_to_bev(half, np.stack([K, K]), np.stack([front, back]), grid, image_hw=hw)
    peak2 = np.unravel_index(np.argmax(bev2), bev2.shape)
    np.testing.assert_allclose(grid.cell_to_metric(peak2), target[:2], atol=0.5)


def _assert_valid_detections(dets, frame) -> None:
    """Some detections, each in one of the frame's cameras, inside its image, scored and labelled."""
    from riskdistill.teacher.detector import DEFAULT_CLASSES

    h, w = (int(v) for v in frame.annotation["image_hw"])
    assert dets and {d.camera for d in dets} <= set(frame.camera_names)
    for d in dets:
        x0, y0, x1, y1 = d.box2d
        assert 0.0 <= x0 < x1 <= w and 0.0 <= y0 < y1 <= h
        assert 0.0 < d.score <= 1.0 and d.label in DEFAULT_CLASSES
