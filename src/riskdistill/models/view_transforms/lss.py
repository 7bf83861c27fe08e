"""Lift-splat-shoot (Philion & Fidler, 2020) view transform.

Lift: a 1x1 conv predicts, per feature pixel, a softmax over ``depth_bins`` depths in
[``depth_min_m``, ``depth_max_m``] and ``C`` context features; their outer product places the context
along the pixel's ray (ray from ``K``, ego-frame points from ``T_ego_from_cam``). Splat: every frustum point
inside the BEV map and between ``z_min_m`` and ``z_max_m`` is summed into its BEV cell (scatter-add).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from riskdistill.geometry import BevGrid
from riskdistill.models.view_transforms.base import (
    VIEW_TRANSFORMS,
    ViewTransform,
    ViewTransformConfig,
    apply_matrix,
)


@VIEW_TRANSFORMS.register
class LiftSplatViewTransform(ViewTransform):
    """Lift-splat: per-pixel depth distribution, features splatted into BEV pillars."""

    name: ClassVar[str] = "lss"

    def __init__(self, cfg: ViewTransformConfig, channels: int, grid: BevGrid):
        super().__init__()
        if cfg.depth_max_m <= cfg.depth_min_m:
            raise ValueError(f"depth_max_m ({cfg.depth_max_m}) must be > depth_min_m ({cfg.depth_min_m})")
        self.bev_hw = tuple(cfg.bev_hw)
        self.channels = channels
        self.d = cfg.depth_bins
        step = (cfg.depth_max_m - cfg.depth_min_m) / cfg.depth_bins
        depths = cfg.depth_min_m + (torch.arange(cfg.depth_bins, dtype=torch.float32) + 0.5) * step
        self.register_buffer("depths", depths, persistent=False)  # [D] bin centres
        self.depth_net = nn.Conv2d(channels, cfg.depth_bins + channels, 1)
        hb, wb = self.bev_hw
        self.x_max, self.y_max = grid.x_max_m, grid.y_max_m
        self.dx = (grid.x_max_m - grid.x_min_m) / hb
        self.dy = (grid.y_max_m - grid.y_min_m) / wb
        self.z_min, self.z_max = cfg.z_min_m, cfg.z_max_m

    def forward(
        self,
        feats: torch.Tensor,
        K: torch.Tensor,
        T_ego_from_cam: torch.Tensor,
        camera_valid: torch.Tensor,
        image_hw: tuple[int, int],
    ) -> torch.Tensor:
        b, n, c, hf, wf = feats.shape
        hb, wb = self.bev_hw
        h, w = image_hw
        x = self.depth_net(feats.flatten(0, 1))  # [B*N, D + C, Hf, Wf]
        depth = x[:, : self.d].softmax(1).view(b, n, self.d, hf, wf)
        ctx = x[:, self.d :].view(b, n, c, hf, wf)

        # rays through the feature pixel centres, in the camera frame (z = 1)
        u = (torch.arange(wf, device=x.device, dtype=x.dtype) + 0.5) * (w / wf)
        v = (torch.arange(hf, device=x.device, dtype=x.dtype) + 0.5) * (h / hf)
        K = K.float()
        fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]  # [B, N, 1, 1]
        cx, cy, s = K[..., 0, 2, None, None], K[..., 1, 2, None, None], K[..., 0, 1, None, None]
        yn = (v.view(1, 1, hf, 1) - cy) / fy  # [B, N, Hf, 1]
        xn = (u.view(1, 1, 1, wf) - cx - s * yn) / fx  # [B, N, Hf, Wf]
        rays = torch.stack([xn, yn.expand_as(xn), torch.ones_like(xn)], dim=-1)  # [B, N, Hf, Wf, 3]
        pts = rays[:, :, None] * self.depths.view(1, 1, -1, 1, 1, 1)  # [B, N, D, Hf, Wf, 3]
        R = T_ego_from_cam[..., :3, :3].float()
        t = T_ego_from_cam[..., :3, 3].float()
        ego = apply_matrix(R.view(b, n, 1, 1, 1, 3, 3), pts) + t.view(
            b, n, 1, 1, 1, 3
        )  # [B, N, D, Hf, Wf, 3]

        row = torch.floor((self.x_max - ego[..., 0]) / self.dx)
        col = torch.floor((self.y_max - ego[..., 1]) / self.dy)
        keep = (
            (row >= 0)
            & (row < hb)
            & (col >= 0)
            & (col < wb)
            & (ego[..., 2] >= self.z_min)
            & (ego[..., 2] <= self.z_max)
            & camera_valid.view(b, n, 1, 1, 1).bool()
        )  # [B, N, D, Hf, Wf]
        batch = torch.arange(b, device=x.device).view(b, 1, 1, 1, 1)
        idx = batch * (hb * wb) + row.clamp(0, hb - 1).long() * wb + col.clamp(0, wb - 1).long()
        weight = depth * keep.to(depth.dtype)  # [B, N, D, Hf, Wf]
        feat = weight.unsqueeze(-1) * ctx.permute(0, 1, 3, 4, 2).unsqueeze(2)  # [B, N, D, Hf, Wf, C]
        bev = torch.zeros(b * hb * wb, c, device=x.device, dtype=feat.dtype)
        bev = bev.index_add(0, idx.reshape(-1), feat.reshape(-1, c))
        return bev.view(b, hb, wb, c).permute(0, 3, 1, 2).contiguous()  # [B, C, Hb, Wb]
