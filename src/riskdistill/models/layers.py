"""Small building blocks shared by the view transforms and the heads (plain PyTorch, ONNX-exportable).

- :func:`deformable_sample`: multi-head deformable sampling with ``grid_sample`` (the core of
  deformable attention, as in Deformable DETR / BEVFormer, without a custom CUDA kernel);
- :func:`softmax_last`: softmax over a short last dimension (the sampling points);
- :func:`bev_cell_centers`: ego-frame xy of the cell centres of a BEV feature map covering a ``BevGrid``;
- :func:`sinusoidal_pos_2d`: fixed 2-D sine/cosine position codes of those cells;
- :class:`ConvBlock`, :class:`ResBlock`, :func:`mlp`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from riskdistill.geometry import BevGrid


def deformable_sample(value: torch.Tensor, grid: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted bilinear samples of ``value`` at ``grid``.

    - ``value``: ``[B', C, H, W]`` (``B'`` = batch x heads, or batch x cameras x heads);
    - ``grid``: ``[B', Q, P, 2]`` sampling points in ``grid_sample`` coordinates (x, y in [-1, 1], pixel
      edges at +-1, i.e. ``align_corners=False``); points outside read zeros;
    - ``weights``: ``[B', Q, P]`` weight of each point.

    Returns ``[B', C, Q]`` = sum over P of weight x sample.
    """
    sampled = F.grid_sample(value, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (sampled * weights.unsqueeze(1)).sum(-1)  # [B', C, Q, P] -> [B', C, Q]


def softmax_last(x: torch.Tensor) -> torch.Tensor:
    """Softmax over a short last dimension (a few sampling points): written out, because ``Tensor.softmax``
    over a last dimension of 4 is about 3x slower on the CPU."""
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def bev_cell_centers(grid: BevGrid, bev_hw: tuple[int, int]) -> torch.Tensor:
    """``[Hb, Wb, 2]`` float32 ego-frame (x, y) of the cell centres of an ``Hb x Wb`` feature map that covers
    ``grid``'s extent (row 0 = front, column 0 = left, like the grid itself)."""
    hb, wb = bev_hw
    dx = (grid.x_max_m - grid.x_min_m) / hb
    dy = (grid.y_max_m - grid.y_min_m) / wb
    x = grid.x_max_m - (torch.arange(hb, dtype=torch.float64) + 0.5) * dx
    y = grid.y_max_m - (torch.arange(wb, dtype=torch.float64) + 0.5) * dy
    xx, yy = torch.meshgrid(x, y, indexing="ij")
    return torch.stack([xx, yy], dim=-1).float()


def sinusoidal_pos_2d(bev_hw: tuple[int, int], channels: int) -> torch.Tensor:
    """``[Hb * Wb, C]`` fixed sine/cosine codes of (row, col), half the channels each (C divisible by 4)."""
    if channels % 4:
        raise ValueError(f"sinusoidal_pos_2d: channels must be divisible by 4, got {channels}")
    hb, wb = bev_hw
    quarter = channels // 4
    freq = torch.exp(-math.log(10000.0) * torch.arange(quarter, dtype=torch.float32) / quarter)
    rows = (torch.arange(hb, dtype=torch.float32) + 0.5)[:, None] * freq  # [Hb, C/4]
    cols = (torch.arange(wb, dtype=torch.float32) + 0.5)[:, None] * freq  # [Wb, C/4]
    r = torch.cat([rows.sin(), rows.cos()], dim=-1)[:, None, :].expand(hb, wb, 2 * quarter)
    c = torch.cat([cols.sin(), cols.cos()], dim=-1)[None, :, :].expand(hb, wb, 2 * quarter)
    return torch.cat([r, c], dim=-1).reshape(hb * wb, channels)


def norm2d(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups (batch-size independent, unlike BatchNorm)."""
    groups = math.gcd(8, channels)
    return nn.GroupNorm(groups, channels)


class ConvBlock(nn.Sequential):
    """conv k x k -> GroupNorm -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            norm2d(c_out),
            nn.ReLU(inplace=True),
        )


class ResBlock(nn.Module):
    """Two 3x3 conv layers with GroupNorm and an identity skip: ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


def mlp(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, c_out))
