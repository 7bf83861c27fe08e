"""BEV encoder after the view transform: optional temporal fusion, then residual conv blocks.

Temporal fusion (``TemporalConfig.enabled``): the BEV of the most recent previous frame
(``Observation.prev_images[:, -1]``, computed by the same backbone and view transform with the current
calibration and without gradients, as BEVFormer does for its history) is concatenated with the current BEV
and mixed by a 1x1 conv. The previous BEV is *not* warped by the ego motion (the observation carries no
odometry between frames); the conv learns what it can from the unaligned pair. Samples whose previous frame
is missing (``prev_valid`` False) or batches without ``prev_images`` use the current BEV in its place.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from riskdistill.config import StrictConfig
from riskdistill.models.layers import ResBlock


class BevEncoderConfig(StrictConfig):
    n_blocks: int = Field(default=2, ge=0)


class TemporalConfig(StrictConfig):
    enabled: bool = False


class BevEncoder(nn.Module):
    """``[B, C, Hb, Wb] -> [B, C, Hb, Wb]``."""

    def __init__(self, cfg: BevEncoderConfig, channels: int):
        super().__init__()
        self.blocks = nn.Sequential(*(ResBlock(channels) for _ in range(cfg.n_blocks)))

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        return self.blocks(bev)


class TemporalFusion(nn.Module):
    """``cat([bev, prev_bev]) -> 1x1 conv``, initialised to pass the current BEV through unchanged."""

    def __init__(self, channels: int):
        super().__init__()
        self.mix = nn.Conv2d(2 * channels, channels, 1)
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.weight[:, :channels, 0, 0].copy_(torch.eye(channels))
            self.mix.bias.zero_()

    def forward(self, bev: torch.Tensor, prev_bev: torch.Tensor | None, prev_valid: torch.Tensor | None):
        if prev_bev is None:
            prev_bev = bev
        elif prev_valid is not None:
            keep = prev_valid.view(-1, 1, 1, 1).to(bev.dtype)
            prev_bev = keep * prev_bev + (1.0 - keep) * bev
        return self.mix(torch.cat([bev, prev_bev], dim=1))
