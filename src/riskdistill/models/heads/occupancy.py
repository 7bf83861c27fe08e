"""BEV occupancy head: per-cell logits of the 5 ``data.batch.BEV_CHANNELS`` on the shared ``BevGrid``.

A conv block at the BEV feature resolution, bilinear upsampling to the grid, a conv block and a 1x1 conv.
Loss: binary cross-entropy (``loss="bce"``, optional ``pos_weight``) or sigmoid focal loss
(``loss="focal"``). Metric: IoU per channel at probability 0.5 and their mean.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field
from torch import nn

from riskdistill.contracts.batch import BEV_CHANNELS, Observation, Targets
from riskdistill.geometry import BevGrid
from riskdistill.models.heads.base import Head, HeadConfig, register_head
from riskdistill.models.layers import ConvBlock


class OccupancyHeadConfig(HeadConfig):
    hidden: int = Field(default=32, ge=1)
    loss: Literal["bce", "focal"] = "bce"
    pos_weight: float = Field(default=2.0, gt=0.0, description="BCE weight of occupied cells")
    focal_gamma: float = Field(default=2.0, ge=0.0)


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean focal loss with soft targets: BCE x |target - p|^gamma."""
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * (target - p).abs().pow(gamma)).mean()


@register_head
class OccupancyHead(Head):
    name: ClassVar[str] = "occupancy"
    config_cls: ClassVar[type[HeadConfig]] = OccupancyHeadConfig
    target_names: ClassVar[tuple[str, ...]] = ("bev_occupancy",)
    target_fields: ClassVar[tuple[str, ...]] = ("bev_occupancy",)
    output_keys: ClassVar[tuple[str, ...]] = ("occupancy",)

    def __init__(self, cfg: OccupancyHeadConfig, bev_channels: int, bev_hw: tuple[int, int], grid: BevGrid):
        super().__init__()
        self.cfg = cfg
        self.grid_hw = grid.shape
        self.pre = ConvBlock(bev_channels, cfg.hidden)
        self.post = nn.Sequential(
            ConvBlock(cfg.hidden, cfg.hidden), nn.Conv2d(cfg.hidden, len(BEV_CHANNELS), 1)
        )

    def forward(self, bev: torch.Tensor, obs: Observation) -> dict[str, torch.Tensor]:
        x = self.pre(bev)  # [B, hidden, Hb, Wb]
        if tuple(x.shape[-2:]) != self.grid_hw:
            x = F.interpolate(x, size=self.grid_hw, mode="bilinear", align_corners=False)
        return {"occupancy": self.post(x)}  # [B, 5, H, W] logits

    def loss(
        self, outputs: dict[str, torch.Tensor], targets: Targets, step: int | None = None
    ) -> torch.Tensor:
        self.require(outputs, targets)
        logits, target = outputs["occupancy"], targets.bev_occupancy.to(outputs["occupancy"].dtype)
        if self.cfg.loss == "focal":
            return sigmoid_focal_loss(logits, target, self.cfg.focal_gamma)
        pw = torch.tensor(self.cfg.pos_weight, device=logits.device, dtype=logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)

    @torch.no_grad()
    def metrics(self, outputs: dict[str, torch.Tensor], targets: Targets) -> dict[str, float]:
        self.require(outputs, targets)
        pred = outputs["occupancy"] > 0.0  # sigmoid > 0.5
        gt = targets.bev_occupancy > 0.5
        inter = (pred & gt).sum(dim=(0, 2, 3)).float()
        union = (pred | gt).sum(dim=(0, 2, 3)).float()
        out: dict[str, float] = {}
        ious = []
        for i, ch in enumerate(BEV_CHANNELS):
            if union[i] > 0:
                iou = float(inter[i] / union[i])
                out[f"occupancy_iou_{ch}"] = iou
                ious.append(iou)
        out["occupancy_iou"] = sum(ious) / len(ious) if ious else 1.0
        return out
