"""Image-space auxiliary head: per camera, what each feature cell shows and how far it is.

It reads the camera features ``[B, N, C, Hf, Wf]`` (``reads = "image"``) and predicts, per cell, the classes
of ``data.image_labels.IMAGE_CLASSES`` and the depth of the nearest surface. The labels come free from the
simulator's renderer (``data.targets.ImageLabelsTarget``); they teach the backbone what vehicles and
pedestrians look like much faster than the BEV losses alone. Training only (``train_only``): nothing of it
runs at inference.

Loss: class-weighted cross-entropy (small, rare classes weigh more) plus ``depth_weight`` times the L1 of
``log(1 + depth) / log(1 + 80)``, on the cameras that delivered an image. The labels are pooled to the
feature grid so that small things survive (a cell is "vulnerable" if any label cell in it is).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field
from torch import nn

from riskdistill.contracts.batch import Observation, Targets
from riskdistill.geometry import BevGrid
from riskdistill.models.heads.base import Head, HeadConfig, register_head
from riskdistill.models.layers import ConvBlock

N_CLASSES = 4  # background, vehicle, vulnerable, static obstacle (data.image_labels.IMAGE_CLASSES)
MAX_DEPTH_M = 80.0
_PRIORITY = (0, 3, 1, 2)  # pooling: vulnerable > vehicle > static obstacle > background


class ImageAuxHeadConfig(HeadConfig):
    hidden: int = Field(default=32, ge=1)
    class_weights: tuple[float, float, float, float] = (1.0, 4.0, 12.0, 4.0)
    depth_weight: float = Field(default=1.0, ge=0.0)


def pool_labels(
    sem: torch.Tensor, depth: torch.Tensor, hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[M, h, w]`` classes and depths -> ``[M, Hf, Wf]``: a cell takes the highest-priority class present
    in it and the nearest depth."""
    one_hot = F.one_hot(sem.long().clamp(0, N_CLASSES - 1), N_CLASSES).permute(0, 3, 1, 2).float()
    present = F.adaptive_max_pool2d(one_hot, hw)  # [M, K, Hf, Wf]
    out = torch.zeros(present.shape[0], *hw, dtype=torch.long, device=sem.device)
    for k in _PRIORITY:
        out = torch.where(present[:, k] > 0, torch.full_like(out, k), out)
    near = -F.adaptive_max_pool2d(-depth.float()[:, None], hw)[:, 0]
    return out, near


@register_head
class ImageAuxHead(Head):
    name: ClassVar[str] = "image_aux"
    config_cls: ClassVar[type[HeadConfig]] = ImageAuxHeadConfig
    target_names: ClassVar[tuple[str, ...]] = ("image_labels",)
    target_fields: ClassVar[tuple[str, ...]] = ("image_semantics", "image_depth_m", "image_valid")
    output_keys: ClassVar[tuple[str, ...]] = ("image_logits", "image_depth")
    reads: ClassVar[str] = "image"
    train_only: ClassVar[bool] = True

    def __init__(self, cfg: ImageAuxHeadConfig, channels: int, bev_hw: tuple[int, int], grid: BevGrid):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(ConvBlock(channels, cfg.hidden), nn.Conv2d(cfg.hidden, N_CLASSES + 1, 1))

    def forward(self, feats: torch.Tensor, obs: Observation) -> dict[str, torch.Tensor]:
        b, n = feats.shape[:2]
        y = self.net(feats.flatten(0, 1)).view(b, n, N_CLASSES + 1, *feats.shape[-2:])
        return {
            "image_logits": y[:, :, :N_CLASSES],  # [B, N, K, Hf, Wf]
            "image_depth": torch.sigmoid(y[:, :, N_CLASSES]),  # [B, N, Hf, Wf], log-depth / log(1 + 80)
            "image_cameras": obs.camera_valid.bool(),  # [B, N]: cameras that delivered an image
        }

    def _labels(self, outputs: dict, targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = outputs["image_logits"]
        b, n, _, hf, wf = logits.shape
        sem, depth = pool_labels(
            targets.image_semantics.flatten(0, 1), targets.image_depth_m.flatten(0, 1), (hf, wf)
        )
        use = outputs["image_cameras"].reshape(-1) & targets.image_valid.reshape(-1, 1).expand(b, n).reshape(
            -1
        )
        return sem, depth, use

    def loss(
        self, outputs: dict[str, torch.Tensor], targets: Targets, step: int | None = None
    ) -> torch.Tensor:
        self.require(outputs, targets)
        sem, depth, use = self._labels(outputs, targets)
        if not bool(use.any()):
            return outputs["image_logits"].sum() * 0.0
        logits = outputs["image_logits"].flatten(0, 1)[use]  # [M, K, Hf, Wf]
        w = torch.tensor(self.cfg.class_weights, device=logits.device, dtype=logits.dtype)
        ce = F.cross_entropy(logits.float(), sem[use], weight=w.float())
        target = torch.log1p(depth[use].clamp(0.0, MAX_DEPTH_M)) / math.log1p(MAX_DEPTH_M)
        l1 = (outputs["image_depth"].flatten(0, 1)[use].float() - target).abs().mean()
        return ce + self.cfg.depth_weight * l1

    @torch.no_grad()
    def metrics(self, outputs: dict[str, torch.Tensor], targets: Targets) -> dict[str, float]:
        self.require(outputs, targets)
        sem, _, use = self._labels(outputs, targets)
        pred = outputs["image_logits"].flatten(0, 1)[use].argmax(1)
        gt = sem[use]
        out = {}
        for k, name in ((1, "vehicle"), (2, "vulnerable")):
            inter = ((pred == k) & (gt == k)).sum().float()
            union = ((pred == k) | (gt == k)).sum().float()
            if union > 0:
                out[f"image_iou_{name}"] = float(inter / union)
        return out
