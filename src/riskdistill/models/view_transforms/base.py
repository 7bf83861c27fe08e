"""Camera -> BEV view transforms: shared config, calibration geometry and the registry.

Every view transform maps per-camera image features ``[B, N_cam, C, Hf, Wf]`` plus the calibration of the
images as delivered (``K [B, N_cam, 3, 3]``, ``T_ego_from_cam [B, N_cam, 4, 4]``, OpenCV camera frame) to
BEV features ``[B, C, Hb, Wb]`` covering the ``BevGrid`` (row 0 = front, column 0 = left). The geometry is
computed from the calibration at every call, so a changed rig is handled by projection, not memorised.
Dropped cameras (``camera_valid`` False) contribute nothing.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, field_validator
from torch import nn

from riskdistill.config import StrictConfig
from riskdistill.geometry import BevGrid
from riskdistill.models.layers import bev_cell_centers
from riskdistill.registry import Registry

MIN_DEPTH_M = 0.1


VIEW_TRANSFORMS: Registry[type[ViewTransform]] = Registry("view transform")


class ViewTransformConfig(StrictConfig):
    """``type``: a registered view transform, ``deformable`` (BEVFormer-style spatial cross-attention,
    default) or ``lss`` (lift-splat).

    ``bev_hw``: the BEV feature map (it covers the whole grid; heads upsample to the grid shape).
    ``deformable``: ``heights_m`` (pillar of reference heights above the ground), ``n_heads``,
    ``n_points`` per height, ``n_layers``, ``ffn_dim``, ``rebatch`` (per camera only the queries it sees).
    ``lss``: ``depth_min_m``, ``depth_max_m``, ``depth_bins``, ``z_min_m``/``z_max_m`` (kept heights).
    """

    type: str = "deformable"  # a name in VIEW_TRANSFORMS
    bev_hw: tuple[int, int] = (32, 32)
    heights_m: list[float] = Field(default_factory=lambda: [0.0, 1.0, 2.0, 3.0], min_length=1)
    n_heads: int = Field(default=4, ge=1)
    n_points: int = Field(default=1, ge=1)
    n_layers: int = Field(default=1, ge=1)
    ffn_dim: int = Field(default=128, ge=1)
    rebatch: bool = True
    depth_min_m: float = Field(default=1.0, gt=0.0)
    depth_max_m: float = Field(default=49.0, gt=0.0)
    depth_bins: int = Field(default=24, ge=1)
    z_min_m: float = -2.0
    z_max_m: float = 4.0

    @field_validator("type")
    @classmethod
    def _registered(cls, v: str) -> str:
        VIEW_TRANSFORMS.get(v)  # an unknown name lists the registered view transforms
        return v


def apply_matrix(M: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``M @ p`` for broadcastable ``M [..., 3, 3]`` and ``p [..., 3]``, written as multiply-and-add so it
    stays float32 under autocast (a bf16 matmul would move projected pixels by several pixels). Column by
    column (``M[..., :, j] * p_j``): no ``[..., 3, 3]`` product of the broadcast shape is built, which in an
    exported graph cost more than the image backbone; the sums are added in the same order as ``sum(-1)``."""
    return (M[..., 0] * p[..., 0, None] + M[..., 1] * p[..., 1, None]) + M[..., 2] * p[..., 2, None]


def cam_from_ego(T_ego_from_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation ``[..., 3, 3]`` and translation ``[..., 3]`` of the inverse rigid transform (analytic)."""
    R = T_ego_from_cam[..., :3, :3]
    t = T_ego_from_cam[..., :3, 3]
    Rt = R.transpose(-1, -2)
    return Rt, -apply_matrix(Rt, t)


def pillar_points(grid: BevGrid, bev_hw: tuple[int, int], heights_m: list[float]) -> torch.Tensor:
    """Ego-frame points ``[Q * Z, 3]``: a pillar of ``heights_m`` above each of the ``Q = Hb * Wb`` cell
    centres of the BEV feature map, the heights of one cell consecutive (cell-major)."""
    hb, wb = bev_hw
    xy = bev_cell_centers(grid, bev_hw).reshape(hb * wb, 1, 2)
    z = torch.tensor(heights_m, dtype=torch.float32)
    points = torch.cat([xy.expand(-1, len(z), 2), z.view(1, -1, 1).expand(hb * wb, -1, 1)], dim=-1)
    return points.reshape(-1, 3)


def project_to_images(
    points_ego: torch.Tensor,
    K: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    image_hw: tuple[int, int],
    camera_valid: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project ego-frame points ``[P, 3]`` into every camera.

    Returns ``grid [B, N, P, 2]`` in ``grid_sample`` coordinates of the image (x right, y down, pixel edges
    at +-1; a pixel u covers [u, u + 1)) and ``valid [B, N, P]``: in front of the camera, inside the image
    and the camera not dropped.
    """
    R, t = cam_from_ego(T_ego_from_cam.float())  # [B, N, 3, 3], [B, N, 3]
    p = apply_matrix(R[:, :, None], points_ego.float()[None, None]) + t[:, :, None, :]  # [B, N, P, 3] camera
    depth = p[..., 2]
    uvw = apply_matrix(K.float()[:, :, None], p)
    uv = uvw[..., :2] / depth.clamp(min=MIN_DEPTH_M).unsqueeze(-1)
    h, w = image_hw
    scale = torch.tensor([2.0 / w, 2.0 / h], device=uv.device, dtype=uv.dtype)
    grid = uv * scale - 1.0
    valid = (depth > MIN_DEPTH_M) & (grid.abs() <= 1.0).all(-1) & camera_valid[:, :, None].bool()
    return grid, valid


class ViewTransform(nn.Module):
    """Interface: ``forward(feats, K, T_ego_from_cam, camera_valid, image_hw) -> [B, C, Hb, Wb]``; built as
    ``cls(cfg: ViewTransformConfig, channels, grid)``; registered by ``name`` in :data:`VIEW_TRANSFORMS`."""

    name: ClassVar[str]

    def forward(
        self,
        feats: torch.Tensor,
        K: torch.Tensor,
        T_ego_from_cam: torch.Tensor,
        camera_valid: torch.Tensor,
        image_hw: tuple[int, int],
    ) -> torch.Tensor:
        raise NotImplementedError
