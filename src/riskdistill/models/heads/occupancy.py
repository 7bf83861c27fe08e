"""BEV occupancy head: per-cell logits of the 5 ``data.batch.BEV_CHANNELS`` on the shared ``BevGrid``.

A conv block at the BEV feature resolution, bilinear upsampling to the grid, a conv block and a 1x1 conv.
Loss: binary cross-entropy (``loss="bce"``, ``pos_weight`` for occupied cells, or one weight per channel in
``channel_pos_weight``: small things like pedestrians need more) or sigmoid focal loss (``loss="focal"``),
plus ``dice_weight`` times a soft Dice loss per channel (insensitive to how rare a class is). BCE only:
``vulnerable_on_road_weight`` multiplies the loss of pedestrian and cyclist cells on the drivable area.
Metric: IoU per channel at probability 0.5 and their mean.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field, field_validator, model_validator
from torch import nn

from riskdistill.contracts.batch import BEV_CHANNELS, Observation, Targets
from riskdistill.geometry import BevGrid
from riskdistill.models.heads.base import Head, HeadConfig, register_head
from riskdistill.models.layers import ConvBlock


class OccupancyHeadConfig(HeadConfig):
    hidden: int = Field(default=32, ge=1)
    loss: Literal["bce", "focal"] = "bce"
    pos_weight: float = Field(default=2.0, gt=0.0, description="BCE weight of occupied cells")
    channel_pos_weight: tuple[float, ...] | None = Field(
        default=None, description="per-channel BCE weights of occupied cells (BEV_CHANNELS order); wins"
    )
    focal_gamma: float = Field(default=2.0, ge=0.0)
    dice_weight: float = Field(default=0.0, ge=0.0)
    vulnerable_on_road_weight: float = Field(
        default=1.0,
        ge=1.0,
        description="BCE factor on vulnerable-road-user cells that lie on the drivable area (a pedestrian "
        "on the carriageway: under 10 % of pedestrian sightings, the ones a planner must not miss)",
    )

    @field_validator("channel_pos_weight")
    @classmethod
    def _per_channel(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None and (len(v) != len(BEV_CHANNELS) or min(v) <= 0):
            raise ValueError(f"channel_pos_weight needs {len(BEV_CHANNELS)} positive weights {BEV_CHANNELS}")
        return v

    @model_validator(mode="after")
    def _weight_needs_bce(self) -> OccupancyHeadConfig:
        if self.vulnerable_on_road_weight != 1.0 and self.loss != "bce":
            raise ValueError(
                f"vulnerable_on_road_weight {self.vulnerable_on_road_weight} weights the BCE loss; "
                f"loss is {self.loss!r} (use loss='bce' or vulnerable_on_road_weight=1)"
            )
        return self


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean focal loss with soft targets: BCE x |target - p|^gamma."""
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * (target - p).abs().pow(gamma)).mean()


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean over channels of ``1 - soft Dice`` (``[B, C, H, W]``), summed over the batch and the grid."""
    p = torch.sigmoid(logits.float())
    t = target.float()
    inter = (p * t).sum(dim=(0, 2, 3))
    return (1.0 - (2.0 * inter + eps) / (p.sum(dim=(0, 2, 3)) + t.sum(dim=(0, 2, 3)) + eps)).mean()


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
        cfg = self.cfg
        if cfg.loss == "focal":
            loss = sigmoid_focal_loss(logits, target, cfg.focal_gamma)
        else:
            w = cfg.channel_pos_weight or (cfg.pos_weight,) * len(BEV_CHANNELS)
            pw = torch.tensor(w, device=logits.device, dtype=logits.dtype).view(-1, 1, 1)
            loss = F.binary_cross_entropy_with_logits(
                logits, target, weight=self._cell_weight(target), pos_weight=pw
            )
        if cfg.dice_weight > 0:
            loss = loss + cfg.dice_weight * soft_dice_loss(logits, target)
        return loss

    def _cell_weight(self, target: torch.Tensor) -> torch.Tensor | None:
        """Per-cell BCE weight ``[B, C, H, W]``: ``vulnerable_on_road_weight`` on the vulnerable channel's
        occupied cells that the drivable target holds, 1 elsewhere; None when that factor is 1."""
        factor = self.cfg.vulnerable_on_road_weight
        if factor == 1.0:
            return None
        vru, road = BEV_CHANNELS.index("vulnerable"), BEV_CHANNELS.index("drivable")
        on_road = (target[:, vru] > 0.5) & (target[:, road] > 0.5)  # [B, H, W]
        weight = torch.ones_like(target)
        weight[:, vru] = torch.where(on_road, factor, 1.0).to(target.dtype)
        return weight

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
