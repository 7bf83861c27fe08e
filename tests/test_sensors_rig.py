"""Camera rigs: built-in rigs, JSON round trips, resizing, perturbations, clear errors for bad rig files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from riskdistill.config import ConfigError
from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M
from riskdistill.contracts.rig import (
    BUILTIN_RIGS,
    CameraSpec,
    Rig,
    RigPerturbation,
    builtin_rig_path,
    load_rig,
    perturb_rig,
    resize_rig,
)
from riskdistill.geometry import project_points

SIX = ["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"]


@pytest.mark.parametrize("name", ["bench2drive", "nuscenes"])
def test_builtin_rigs_load(name: str) -> None:
    rig = load_rig(name)
    assert rig.name == name
    assert sorted(rig.camera_names) == sorted(SIX)
    assert rig.image_size() == (900, 1600)
    assert rig.K().shape == (6, 3, 3) and rig.T_ego_from_cam().shape == (6, 4, 4)
    assert rig.notes  # documents where the numbers come from
    # the same rig by path
    assert load_rig(builtin_rig_path(name)) == rig


def test_bench2drive_rig_is_converted_to_our_frame() -> None:
    rig = load_rig("bench2drive")
    front, fl, fr, back = (
        rig.camera(n) for n in ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK")
    )
    # CARLA positions are relative to the vehicle centre: ours to the rear axle
    assert front.x_m == pytest.approx(0.80 + EGO_REAR_AXLE_TO_CENTER_M)
    assert back.x_m == pytest.approx(-2.00 + EGO_REAR_AXLE_TO_CENTER_M)
    # CARLA y points right: the front-left camera is at CARLA y = -0.55, yaw -55 -> ours y > 0, yaw > 0
    assert fl.y_m == pytest.approx(0.55) and fl.yaw_deg == pytest.approx(55.0)
    assert fr.y_m == pytest.approx(-0.55) and fr.yaw_deg == pytest.approx(-55.0)
    assert all(c.z_m == pytest.approx(1.60) for c in rig.cameras)
    # the intrinsics of bench2drive.md
    assert front.K()[0, 0] == pytest.approx(1142.5, abs=0.1)
    assert back.K()[0, 0] == pytest.approx(560.2, abs=0.1)
    np.testing.assert_allclose(front.K()[:2, 2], [800.0, 450.0])
    # the front-left optical axis points forward-left in the ego frame
    axis = fl.T_ego_from_cam()[:3, :3] @ np.array([0.0, 0.0, 1.0])
    assert axis[0] > 0 and axis[1] > 0
    assert math.degrees(math.atan2(axis[1], axis[0])) == pytest.approx(55.0)


def test_builtin_rig_files_are_the_builtin_rigs() -> None:
    files = sorted(p.stem for p in builtin_rig_path("bench2drive").parent.glob("*.json"))
    assert files == sorted(BUILTIN_RIGS)
    for name in BUILTIN_RIGS:
        assert load_rig(name).name == name and load_rig(name).notes


def test_bench2drive_tele_is_bench2drive_plus_a_front_camera_with_twice_the_focal_length() -> None:
    tele_rig, b2d = load_rig("bench2drive_tele"), load_rig("bench2drive")
    assert tele_rig.camera_names == [*b2d.camera_names, "CAM_FRONT_TELE"]
    assert tele_rig.cameras[:6] == b2d.cameras  # the surround cameras unchanged, in their order
    for rig in (tele_rig, resize_rig(tele_rig, 64, 176)):
        front, tele = rig.camera("CAM_FRONT"), rig.camera("CAM_FRONT_TELE")
        # the same mount and image size, twice the pixels per radian: a centre crop of CAM_FRONT at 2x
        np.testing.assert_allclose(tele.T_ego_from_cam(), front.T_ego_from_cam())
        assert tele.K()[0, 0] == pytest.approx(2.0 * front.K()[0, 0], rel=1e-4)
        np.testing.assert_allclose(tele.K()[:2, 2], front.K()[:2, 2])
    # a point 25 m ahead, 0.25 m left, lands twice as far from the image centre in the tele camera
    point = np.array([[25.0 + 2.25, 0.25, 1.6]])
    u = {}
    for name in ("CAM_FRONT", "CAM_FRONT_TELE"):
        c = tele_rig.camera(name)
        u[name] = project_points(point, c.K(), np.linalg.inv(c.T_ego_from_cam()))[0][0, 0]
    assert 800.0 - u["CAM_FRONT_TELE"] == pytest.approx(2.0 * (800.0 - u["CAM_FRONT"]), rel=1e-3)


def test_nuscenes_rig_is_plausible() -> None:
    rig = load_rig("nuscenes")
    front = rig.camera("CAM_FRONT")
    assert front.K()[0, 0] == pytest.approx(1266.0, rel=0.01)
    assert rig.camera("CAM_BACK").hfov_deg > front.hfov_deg
    assert all(1.4 < c.z_m < 1.7 for c in rig.cameras)
    assert rig.camera("CAM_BACK_LEFT").yaw_deg > 90 and rig.camera("CAM_BACK_RIGHT").yaw_deg < -90


def test_rig_save_load_round_trip(tmp_path: Path) -> None:
    rig = perturb_rig(load_rig("nuscenes"), RigPerturbation(pitch_delta_deg=2.0, drop_cameras=["CAM_BACK"]))
    path = rig.save(tmp_path / "rig.json")
    again = load_rig(path)
    assert again == rig
    np.testing.assert_array_equal(again.K(), rig.K())
    np.testing.assert_array_equal(again.T_ego_from_cam(), rig.T_ego_from_cam())


def test_camera_extrinsics_project_a_point_ahead_to_the_principal_point() -> None:
    cam = CameraSpec(name="c", x_m=2.0, y_m=0.0, z_m=1.5, hfov_deg=90.0, width_px=200, height_px=100)
    T_cam_from_ego = np.linalg.inv(cam.T_ego_from_cam())
    uv, depth, valid = project_points(
        np.array([[12.0, 0.0, 1.5], [12.0, 10.0, 1.5]]), cam.K(), T_cam_from_ego
    )
    assert valid.all()
    np.testing.assert_allclose(uv[0], [100.0, 50.0])
    assert depth[0] == pytest.approx(10.0)
    assert uv[1, 0] == pytest.approx(0.0)  # 45 deg to the left: the left image edge


def test_resize_rig_scales_intrinsics() -> None:
    rig = load_rig("bench2drive")
    small = resize_rig(rig, 128, 352)
    assert small.image_size() == (128, 352)
    for big_cam, cam in zip(rig.cameras, small.cameras, strict=True):
        s = 352 / 1600
        K, Kb = cam.K(), big_cam.K()
        assert K[0, 0] == pytest.approx(Kb[0, 0] * s) and K[1, 1] == pytest.approx(Kb[1, 1] * s)
        assert K[0, 2] == pytest.approx(176.0) and K[1, 2] == pytest.approx(64.0)
        assert cam.hfov_deg == big_cam.hfov_deg
        np.testing.assert_array_equal(cam.T_ego_from_cam(), big_cam.T_ego_from_cam())
    assert small.camera("CAM_FRONT").vfov_deg == pytest.approx(28.6, abs=0.1)
    with pytest.raises(ValueError, match="positive"):
        resize_rig(rig, 0, 352)


def test_perturbation_drop_cameras() -> None:
    rig = load_rig("bench2drive")
    out = perturb_rig(rig, RigPerturbation(drop_cameras=["CAM_BACK", "CAM_BACK_LEFT"]))
    assert out.camera_names == ["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT"]
    with pytest.raises(ValueError, match="CAM_REAR") as exc:
        perturb_rig(rig, RigPerturbation(drop_cameras=["CAM_REAR"]))
    assert "CAM_FRONT_LEFT" in str(exc.value)  # lists the valid names
    with pytest.raises(ValueError, match="every camera"):
        perturb_rig(rig, RigPerturbation(drop_cameras=SIX))


def test_perturbation_fov_resolution_and_pose() -> None:
    rig = load_rig("bench2drive")
    wide = perturb_rig(rig, RigPerturbation(fov_scale=1.2))
    assert wide.camera("CAM_FRONT").hfov_deg == pytest.approx(84.0)
    assert wide.camera("CAM_FRONT").K()[0, 0] < rig.camera("CAM_FRONT").K()[0, 0]  # wider view: shorter focal
    half = perturb_rig(rig, RigPerturbation(resolution_scale=0.5))
    assert half.image_size() == (450, 800)
    assert half.camera("CAM_FRONT").K()[0, 0] == pytest.approx(rig.camera("CAM_FRONT").K()[0, 0] / 2)
    moved = perturb_rig(rig, RigPerturbation(height_delta_m=0.3, pitch_delta_deg=5.0, yaw_delta_deg=-2.0))
    for a, b in zip(rig.cameras, moved.cameras, strict=True):
        assert b.z_m == pytest.approx(a.z_m + 0.3)
        assert b.pitch_deg == pytest.approx(a.pitch_deg + 5.0)
        assert b.yaw_deg == pytest.approx(a.yaw_deg - 2.0)
    with pytest.raises(ConfigError, match="hfov_deg"):
        perturb_rig(rig, RigPerturbation(fov_scale=3.0))  # 110 deg x 3 is no pinhole camera
    with pytest.raises(ValueError, match="unknown key"):
        RigPerturbation.from_dict({"fov_scal": 1.1})


def test_pitch_moves_the_horizon_and_height_moves_the_ground() -> None:
    """A point at infinity (the horizon) projects at a row that only the pitch changes; raising the camera
    moves a ground point at a fixed distance down in the image."""
    cam = resize_rig(load_rig("bench2drive"), 128, 352).camera("CAM_FRONT")

    def rows(c: CameraSpec) -> tuple[float, float]:
        T_cam_from_ego = np.linalg.inv(c.T_ego_from_cam())
        far = np.array([[1e6, 0.0, 0.0], [c.x_m + 10.0, 0.0, 0.0]])
        uv, _, valid = project_points(far, c.K(), T_cam_from_ego)
        assert valid.all()
        return float(uv[0, 1]), float(uv[1, 1])

    horizon, ground = rows(cam)
    assert horizon == pytest.approx(64.0, abs=0.1)
    pitched = cam.model_copy(update={"pitch_deg": 5.0})
    h2, _ = rows(pitched)
    assert h2 == pytest.approx(64.0 - cam.K()[1, 1] * math.tan(math.radians(5.0)), abs=0.1)  # nose down: up
    raised = cam.model_copy(update={"z_m": cam.z_m + 0.5})
    h3, g3 = rows(raised)
    assert h3 == pytest.approx(horizon, abs=0.1)
    assert g3 > ground + 5.0


# ------------------------------------------------------------------------------------------ bad files
def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "bad_rig.json"
    path.write_text(json.dumps(data))
    return path


def _cam(**overrides: object) -> dict:
    cam = {"name": "CAM_FRONT", "x_m": 1.0, "y_m": 0.0, "z_m": 1.6, "hfov_deg": 70.0, "width_px": 352}
    cam["height_px"] = 128
    cam.update(overrides)
    return cam


def test_bad_rig_unknown_key(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "r", "cameras": [_cam(focal=3.0)]})
    with pytest.raises(ConfigError) as exc:
        load_rig(path)
    msg = str(exc.value)
    assert "bad_rig.json" in msg and "focal" in msg and "hfov_deg" in msg  # names the key, lists valid ones
    path = _write(tmp_path, {"name": "r", "camera": [_cam()]})
    with pytest.raises(ConfigError, match="camera"):
        load_rig(path)


def test_bad_rig_duplicate_camera_names(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "r", "cameras": [_cam(), _cam(y_m=1.0)]})
    with pytest.raises(ConfigError) as exc:
        load_rig(path)
    msg = str(exc.value)
    assert "bad_rig.json" in msg and "duplicate" in msg and "CAM_FRONT" in msg


@pytest.mark.parametrize(
    ("field", "value"), [("hfov_deg", -70.0), ("hfov_deg", 180.0), ("width_px", 0), ("z_m", -1.0)]
)
def test_bad_rig_values_name_the_field(tmp_path: Path, field: str, value: float) -> None:
    path = _write(tmp_path, {"name": "r", "cameras": [_cam(**{field: value})]})
    with pytest.raises(ConfigError) as exc:
        load_rig(path)
    msg = str(exc.value)
    assert "bad_rig.json" in msg and f"cameras.0.{field}" in msg


def test_bad_rig_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a built-in rig"):
        load_rig("kitti")
    with pytest.raises(ConfigError, match="neither a built-in rig"):
        load_rig(tmp_path / "missing.json")
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"broken\.json"):
        load_rig(path)
    with pytest.raises(ConfigError, match="cameras"):
        load_rig(_write(tmp_path, {"name": "r", "cameras": []}))


def test_rig_from_dict_and_mixed_sizes() -> None:
    rig = Rig.from_dict({"name": "r", "cameras": [_cam(), _cam(name="B", width_px=100)]})
    with pytest.raises(ValueError, match="different image sizes"):
        rig.image_size()
    with pytest.raises(KeyError, match="CAM_X"):
        rig.camera("CAM_X")
