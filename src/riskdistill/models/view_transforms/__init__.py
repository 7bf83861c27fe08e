"""Camera -> BEV view transforms by name: ``deformable`` (default), ``lss`` and ``sample`` (Simple-BEV);
see :mod:`.base`."""

from __future__ import annotations

from riskdistill.geometry import BevGrid
from riskdistill.models.view_transforms.base import (
    VIEW_TRANSFORMS,
    ViewTransform,
    ViewTransformConfig,
    cam_from_ego,
    project_to_images,
)
from riskdistill.models.view_transforms.deformable import DeformableViewTransform, SpatialCrossAttention
from riskdistill.models.view_transforms.lss import LiftSplatViewTransform
from riskdistill.models.view_transforms.sample import SampleViewTransform


def build_view_transform(cfg: ViewTransformConfig, channels: int, grid: BevGrid) -> ViewTransform:
    """The view transform named ``cfg.type``; an unknown name lists the valid ones."""
    return VIEW_TRANSFORMS.get(cfg.type)(cfg, channels, grid)


__all__ = [
    "VIEW_TRANSFORMS",
    "DeformableViewTransform",
    "LiftSplatViewTransform",
    "SampleViewTransform",
    "SpatialCrossAttention",
    "ViewTransform",
    "ViewTransformConfig",
    "build_view_transform",
    "cam_from_ego",
    "project_to_images",
]
