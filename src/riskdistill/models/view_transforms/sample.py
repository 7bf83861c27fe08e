"""Simple-BEV lifting (Harley et al., 2022): bilinear sampling of image features at projected voxel centres.

For every BEV cell and each of ``heights_m`` the voxel centre is projected into every camera with the
calibration of the images as delivered; the camera features are sampled there (``grid_sample``), averaged
over the cameras that see the voxel, and the heights are stacked as channels and mixed by a 1x1 conv::

    feats [B, N, C, Hf, Wf] --sample at voxels--> [B, N, C, Q, Z] --mean over cameras--> [B, C * Z, Hb, Wb]
        --1x1 conv + BN + ReLU--> [B, C, Hb, Wb]

No attention and no learned geometry: a cheap, strong camera -> BEV mapping that follows a changed rig by
projection. It has no parameters beyond the 1x1 mix, so it trains fast on a CPU.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from riskdistill.geometry import BevGrid
from riskdistill.models.view_transforms.base import (
    VIEW_TRANSFORMS,
    ViewTransform,
    ViewTransformConfig,
    pillar_points,
    project_to_images,
)


@VIEW_TRANSFORMS.register
class SampleViewTransform(ViewTransform):
    """Parameter-free lifting of image features to voxels by bilinear sampling (Simple-BEV)."""

    name: ClassVar[str] = "sample"

    def __init__(self, cfg: ViewTransformConfig, channels: int, grid: BevGrid):
        super().__init__()
        self.bev_hw = tuple(cfg.bev_hw)
        voxels = pillar_points(grid, self.bev_hw, cfg.heights_m)
        self.register_buffer("voxels", voxels, persistent=False)  # [Q * Z, 3]
        self.n_heights = len(cfg.heights_m)
        self.mix = nn.Sequential(
            nn.Conv2d(channels * self.n_heights, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(
        self,
        feats: torch.Tensor,
        K: torch.Tensor,
        T_ego_from_cam: torch.Tensor,
        camera_valid: torch.Tensor,
        image_hw: tuple[int, int],
    ) -> torch.Tensor:
        b, n, c = feats.shape[:3]
        hb, wb = self.bev_hw
        z = self.n_heights
        grid, valid = project_to_images(
            self.voxels, K, T_ego_from_cam, image_hw, camera_valid
        )  # [B, N, P, 2]
        sampled = F.grid_sample(
            feats.flatten(0, 1),
            grid.flatten(0, 1)[:, None].to(feats.dtype),  # [B*N, 1, P, 2]
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        ).view(b, n, c, -1)  # [B, N, C, P]
        w = valid.to(feats.dtype)[:, :, None, :]  # [B, N, 1, P]
        vox = (sampled * w).sum(1) / w.sum(1).clamp(min=1.0)  # [B, C, P]: mean over the cameras that see it
        vox = vox.view(b, c, hb * wb, z).permute(0, 1, 3, 2).reshape(b, c * z, hb, wb)
        return self.mix(vox)
