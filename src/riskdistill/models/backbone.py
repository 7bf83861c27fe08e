"""Image backbone: normalisation, a timm feature extractor (``features_only``) and a small FPN-style neck.

``[B*N, 3, H, W]`` images (float in [0, 1] or uint8) -> ``[B*N, C, H / s, W / s]`` with ``s`` the stride of
the first of ``out_indices``: every selected level is projected to ``C`` channels by a 1x1 conv, coarser
levels are upsampled and added (top-down), and a 3x3 conv block smooths the sum.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field
from torch import nn

from riskdistill.config import StrictConfig
from riskdistill.models.layers import ConvBlock

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneConfig(StrictConfig):
    """``name``: any timm model with ``features_only`` support (``timm.list_models()``); weights are random
    (no downloads): ``pretrained`` must stay False unless the weights are in the local timm cache."""

    name: str = "mobilenetv3_small_100"
    out_indices: tuple[int, ...] = Field(default=(2, 3), min_length=1)
    pretrained: bool = False


class ImageBackbone(nn.Module):
    def __init__(self, cfg: BackboneConfig, channels: int):
        super().__init__()
        if cfg.name not in timm.list_models():
            raise ValueError(f"unknown timm backbone {cfg.name!r}; see timm.list_models()")
        self.body = timm.create_model(
            cfg.name, pretrained=cfg.pretrained, features_only=True, out_indices=tuple(cfg.out_indices)
        )
        in_chs = self.body.feature_info.channels()
        self.stride = int(self.body.feature_info.reduction()[0])
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_chs)
        self.smooth = ConvBlock(channels, channels)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] or float [0, 1] -> ImageNet-normalised float32."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.body(self.normalise(images))
        x = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1]), strict=True):
            x = lat(f) + F.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.smooth(x)
