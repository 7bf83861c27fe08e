"""Does a student fit the data or the evaluation it is given? Checks that refuse up front, naming both values,
instead of training or scoring on mismatched inputs silently.

- image size: the model reads images of ``image_hw``; data stored at another size is resized to it. A
  resize that changes the aspect ratio (the images would be stretched) or enlarges the images (detail the
  model was trained on does not exist) is a mismatch (:func:`image_size_problem`);
- rig: the cameras (names, mounting, field of view; the resolution aside) the model was trained with and the
  ones it is given (:func:`rig_difference`).

The BEV grid of risk labels is checked where labels are read (``data.targets.RiskMapTarget.check``), and a
resumed training run compares its model config (image size, grid) with the checkpoint's
(``training.config.config_drift``).
"""

from __future__ import annotations

from collections.abc import Sequence

from riskdistill.contracts.rig import Rig

ASPECT_TOLERANCE = 0.01  # relative


def image_size_problem(model_hw: Sequence[int], data_hw: Sequence[int]) -> str | None:
    """Why images stored at ``data_hw`` cannot feed a model trained at ``model_hw`` (None: they can: the
    same size, or a downscale that keeps the aspect ratio)."""
    mh, mw = (int(v) for v in model_hw)
    dh, dw = (int(v) for v in data_hw)
    if (mh, mw) == (dh, dw):
        return None
    if abs((mh / mw) / (dh / dw) - 1.0) > ASPECT_TOLERANCE:
        return (
            f"resizing {dh}x{dw} images to {mh}x{mw} changes the aspect ratio "
            f"({dw / dh:.3f} -> {mw / mh:.3f}): the images would be stretched"
        )
    if mh > dh or mw > dw:
        return (
            f"the model reads {mh}x{mw} images but the data holds smaller ones ({dh}x{dw}): they would be "
            "upsampled"
        )
    return None


def check_image_size(model_hw: Sequence[int], data_hw: Sequence[int], model: str, data: str) -> None:
    """ValueError naming both (``model``, ``data``: where each size comes from) on an image-size mismatch."""
    problem = image_size_problem(model_hw, data_hw)
    if problem is not None:
        raise ValueError(
            f"image size mismatch: {model} has image_hw {list(model_hw)}, {data} has {list(data_hw)}; "
            f"{problem}"
        )


_MOUNT = ("x_m", "y_m", "z_m", "yaw_deg", "pitch_deg", "roll_deg", "hfov_deg")


def rig_difference(trained: Rig, given: Rig, cameras: Sequence[str] | None = None) -> str | None:
    """How ``given`` differs from the rig a model was ``trained`` with, for the ``cameras`` the model reads
    (None: all of the trained rig's); None when they agree (resolution is not compared)."""
    names = list(cameras) if cameras is not None else trained.camera_names
    if cameras is None and trained.camera_names != given.camera_names:
        return f"cameras {trained.camera_names} (trained) vs {given.camera_names} (given)"
    missing = [n for n in names if n not in given.camera_names]
    if missing:
        return f"camera(s) {missing} of the model are not in the given rig's {given.camera_names}"
    for n in names:
        if n not in trained.camera_names:
            continue
        a, b = trained.camera(n), given.camera(n)
        diff = {
            k: (getattr(a, k), getattr(b, k)) for k in _MOUNT if abs(getattr(a, k) - getattr(b, k)) > 1e-6
        }
        if diff:
            return f"camera {n} differs: " + ", ".join(
                f"{k} {x} (trained) vs {y} (given)" for k, (x, y) in diff.items()
            )
    return None


def check_rig(
    trained: Rig, given: Rig, trained_name: str, given_name: str, cameras: Sequence[str] | None = None
) -> None:
    """ValueError naming both rigs when :func:`rig_difference` finds a difference."""
    diff = rig_difference(trained, given, cameras)
    if diff is not None:
        raise ValueError(
            f"rig mismatch: the model was trained with {trained_name}, it is given {given_name}: {diff}"
        )
