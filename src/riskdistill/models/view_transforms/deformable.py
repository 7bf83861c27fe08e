"""BEVFormer-style spatial cross-attention with deformable sampling (plain PyTorch ``grid_sample``).

Each BEV query sits at a cell centre of the ``bev_hw`` map; its pillar of reference points (the cell
centre at ``heights_m``) is projected into every camera with ``K`` and ``T_ego_from_cam``. Per head and
height the query predicts ``n_points`` pixel offsets around the projected point and a softmax weight for
each (over heights x points); features are read bilinearly. A camera counts for a query when at least one
of its reference points projects inside that image; the query's result is the mean over those cameras.
``n_layers`` such layers (attention, residual + LayerNorm, feed-forward) refine learned BEV queries.

With ``rebatch`` (default) each camera samples only for the queries it sees (BEVFormer's "re-batching",
with the longest list of the batch as the common length): a camera sees 10-35 % of the tiny grid, so the
sampling shrinks about 3x. The result equals the dense computation (tested); ONNX export (and
``rebatch=False``) uses the dense form, whose shapes do not depend on the calibration.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from riskdistill.geometry import BevGrid
from riskdistill.models.layers import deformable_sample, mlp, softmax_last
from riskdistill.models.view_transforms.base import (
    VIEW_TRANSFORMS,
    ViewTransform,
    ViewTransformConfig,
    pillar_points,
    project_to_images,
)


class SpatialCrossAttention(nn.Module):
    """One layer. ``query [B, Q, C]`` + camera features -> ``[B, Q, C]``."""

    def __init__(self, channels: int, n_heads: int, n_heights: int, n_points: int, ffn_dim: int):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.h, self.z, self.p = n_heads, n_heights, n_points
        self.offsets = nn.Linear(channels, n_heads * n_heights * n_points * 2)
        self.attn = nn.Linear(channels, n_heads * n_heights * n_points)
        self.out = nn.Linear(channels, channels)
        self.norm1, self.norm2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.ffn = mlp(channels, ffn_dim, channels)
        nn.init.zeros_(self.offsets.weight)
        nn.init.uniform_(self.offsets.bias, -0.5, 0.5)  # feature pixels
        nn.init.zeros_(self.attn.weight)
        nn.init.zeros_(self.attn.bias)

    def forward(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        ref_grid: torch.Tensor,
        ref_valid: torch.Tensor,
        hits: torch.Tensor,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``value [B, N, C, Hf, Wf]`` (projected features), ``hits [B, Q]`` cameras that see each query.

        Dense (``index`` None): ``ref_grid [B, N, Q, Z, 2]``, ``ref_valid [B, N, Q, Z]``. Re-batched:
        ``index [B, N, L]`` lists the queries each camera samples for (those it sees first, padding
        after), ``ref_grid [B, N, L, Z, 2]`` and ``ref_valid [B, N, L, Z]`` are gathered with it.
        """
        b, n, c, hf, wf = value.shape
        nq = query.shape[1]
        h, z, p = self.h, self.z, self.p
        scale = torch.tensor([2.0 / wf, 2.0 / hf], device=query.device, dtype=query.dtype)
        if index is None:  # every camera samples for every query; offsets shared by the cameras
            nl, m = nq, 1
            q = query[:, None]  # [B, 1, Q, C]
        else:  # each camera only for the queries it sees
            nl, m = index.shape[-1], n
            q = torch.gather(query[:, None].expand(b, n, nq, c), 2, index[..., None].expand(b, n, nl, c))
        off = self.offsets(q).view(b, m, nl, h, z, p, 2) * scale  # feature pixels -> normalised
        grid = ref_grid.view(b, n, nl, 1, z, 1, 2) + off  # [B, N, L, h, Z, P, 2]
        grid = grid.permute(0, 1, 3, 2, 4, 5, 6).reshape(b * n * h, nl, z * p, 2)
        attn = softmax_last(self.attn(q).view(b, m, nl, h, z * p)).view(b, m, nl, h, z, p)
        w = attn * ref_valid.view(b, n, nl, 1, z, 1).to(attn.dtype)  # [B, N, L, h, Z, P]
        w = w.permute(0, 1, 3, 2, 4, 5).reshape(b * n * h, nl, z * p)
        v = value.reshape(b * n * h, c // h, hf, wf)
        y = deformable_sample(v, grid, w).view(b, n, c, nl)  # [B, N, C, L]
        if index is None:
            y = y.sum(1)  # [B, C, Q]: sum over cameras
        else:  # scatter each camera's results back to its queries
            y = y.permute(0, 2, 1, 3).reshape(b, c, n * nl)
            y = torch.zeros(b, c, nq, device=y.device, dtype=y.dtype).scatter_add(
                2, index.reshape(b, 1, n * nl).expand(b, c, n * nl), y
            )
        y = (y / hits[:, None, :]).transpose(1, 2)  # [B, Q, C]: mean over the cameras that see the query
        q = self.norm1(query + self.out(y))
        return self.norm2(q + self.ffn(q))


@VIEW_TRANSFORMS.register
class DeformableViewTransform(ViewTransform):
    """BEVFormer-style spatial cross-attention from learned BEV queries (plain PyTorch ``grid_sample``)."""

    name: ClassVar[str] = "deformable"

    def __init__(self, cfg: ViewTransformConfig, channels: int, grid: BevGrid):
        super().__init__()
        self.bev_hw = tuple(cfg.bev_hw)
        hb, wb = self.bev_hw
        pillars = pillar_points(grid, self.bev_hw, cfg.heights_m)
        self.register_buffer("ref_points", pillars, persistent=False)  # [Q * Z, 3]
        self.n_heights = len(cfg.heights_m)
        self.rebatch = cfg.rebatch
        self.bev_embed = nn.Parameter(torch.randn(hb * wb, channels) * 0.02)  # learned BEV queries
        self.value_proj = nn.Conv2d(channels, channels, 1)
        self.layers = nn.ModuleList(
            SpatialCrossAttention(channels, cfg.n_heads, self.n_heights, cfg.n_points, cfg.ffn_dim)
            for _ in range(cfg.n_layers)
        )

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
        grid, valid = project_to_images(self.ref_points, K, T_ego_from_cam, image_hw, camera_valid)
        grid = grid.view(b, n, hb * wb, self.n_heights, 2)
        valid = valid.view(b, n, hb * wb, self.n_heights)
        seen = valid.any(-1)  # [B, N, Q]
        hits = seen.sum(1).clamp(min=1).to(feats.dtype)  # [B, Q]
        index = None
        if self.rebatch and not torch.compiler.is_exporting():
            # "BEV re-batching": per camera only the queries it sees (a camera sees 10-35 % of them)
            nl = max(int(seen.sum(-1).max()), 1)
            index = torch.sort(seen.to(torch.uint8), dim=-1, descending=True, stable=True).indices[..., :nl]
            grid = torch.gather(grid, 2, index[..., None, None].expand(b, n, nl, self.n_heights, 2))
            valid = torch.gather(valid, 2, index[..., None].expand(b, n, nl, self.n_heights))
        value = self.value_proj(feats.flatten(0, 1)).view(b, n, c, hf, wf)
        q = self.bev_embed[None].expand(b, -1, -1)
        for layer in self.layers:
            q = layer(q, value, grid, valid, hits, index)
        return q.transpose(1, 2).reshape(b, c, hb, wb)  # [B, Q, C] -> [B, C, Hb, Wb]
