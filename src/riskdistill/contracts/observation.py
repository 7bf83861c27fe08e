"""The one conversion from what a car delivers (:class:`~riskdistill.contracts.agent.AgentInput`) to what a
model reads (:class:`~riskdistill.contracts.batch.Observation`).

The data set (recorded frames) and the driver (live simulator, the CARLA agent) both call
:func:`observation_from_agent_input`, so a student sees the same tensors in training and on the road:
the same camera selection by name, the same bilinear resize with ``K`` scaled to match, the same
``ego_state`` layout and the same masking of cameras marked invalid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from riskdistill.contracts.agent import AgentInput, EgoState
from riskdistill.contracts.batch import Observation

#: ``Observation.ego_state`` columns, in order.
EGO_STATE_FIELDS: tuple[str, ...] = ("speed_mps", "accel_mps2", "yaw_rate_radps", "steer")


def ego_state_vector(ego: EgoState) -> np.ndarray:
    """``[4]`` float32 in the order of :data:`EGO_STATE_FIELDS`."""
    return np.array([ego.speed_mps, ego.accel_mps2, ego.yaw_rate_radps, ego.steer], dtype=np.float32)


def select_cameras(camera_names: Sequence[str], cameras: Sequence[str] | None) -> list[int]:
    """Indices of ``cameras`` (model order) in ``camera_names`` (delivery order); None keeps all.
    ValueError naming the missing cameras."""
    names = list(camera_names)
    if cameras is None:
        return list(range(len(names)))
    missing = [c for c in cameras if c not in names]
    if missing:
        raise ValueError(
            f"the model needs camera(s) {missing}; the input has {names} (model cameras: {cameras})"
        )
    return [names.index(c) for c in cameras]


def resize_images(images: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """``[N, H0, W0, 3]`` uint8 -> ``[N, H, W, 3]`` (PIL bilinear); unchanged when the size matches."""
    h, w = int(image_hw[0]), int(image_hw[1])
    if images.shape[1:3] == (h, w):
        return images
    return np.stack(
        [np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR)) for a in images]
    )


def scale_intrinsics(K: np.ndarray, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> np.ndarray:
    """``K [N, 3, 3]`` of images resized from ``from_hw`` to ``to_hw`` (pixel u covers [u, u + 1), so
    scaling the pixel grid scales u exactly)."""
    K = np.asarray(K, dtype=np.float64).copy()
    K[:, 0, :] *= to_hw[1] / from_hw[1]
    K[:, 1, :] *= to_hw[0] / from_hw[0]
    return K


def observation_from_agent_input(
    agent_input: AgentInput, cameras: Sequence[str] | None = None, image_hw: tuple[int, int] | None = None
) -> Observation:
    """An unbatched :class:`Observation` (uint8 ``images [N, 3, H, W]``; add ``B`` with
    ``Observation.batched``): cameras ``cameras`` in that order (None: as delivered), resized to
    ``image_hw`` (None: as delivered) with ``K`` scaled to match. A camera marked False in
    ``agent_input.extras["camera_valid"]`` (a dropped camera delivers black) is marked invalid.

    ValueError when the input has no images or calibration, or images that are not uint8 ``[N, H, W, 3]``.
    """
    ai = agent_input
    if ai.images is None or ai.K is None or ai.T_ego_from_cam is None:
        raise ValueError("AgentInput has no camera images/calibration; the driver must ask for a camera rig")
    imgs = np.asarray(ai.images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3 or imgs.dtype != np.uint8:
        raise ValueError(f"AgentInput.images must be uint8 [N, H, W, 3], got {imgs.dtype} {imgs.shape}")
    names = list(ai.camera_names) or [str(i) for i in range(len(imgs))]
    idx = select_cameras(names, cameras)
    imgs = imgs[idx]
    from_hw = (int(imgs.shape[1]), int(imgs.shape[2]))
    to_hw = from_hw if image_hw is None else (int(image_hw[0]), int(image_hw[1]))
    imgs = resize_images(imgs, to_hw)
    K = scale_intrinsics(np.asarray(ai.K)[idx], from_hw, to_hw)
    T = np.asarray(ai.T_ego_from_cam, dtype=np.float64)[idx]
    valid = np.ones(len(names), dtype=bool)
    if "camera_valid" in ai.extras:
        valid = np.asarray(ai.extras["camera_valid"], dtype=bool)
    return Observation(
        images=torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2),  # [N, 3, H, W] uint8
        camera_valid=torch.from_numpy(valid[idx].copy()),
        K=torch.from_numpy(K.astype(np.float32)),
        T_ego_from_cam=torch.from_numpy(T.astype(np.float32)),
        ego_state=torch.from_numpy(ego_state_vector(ai.ego)),
        command=torch.tensor(int(ai.command), dtype=torch.int64),
        target_point=torch.from_numpy(np.asarray(ai.target_point_ego, dtype=np.float32).reshape(2).copy()),
    )
