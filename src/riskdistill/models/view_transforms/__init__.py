"""Camera -> BEV view transforms by name: ``deformable`` (default) and ``lss``; see :mod:`.base`."""

from __future__ import annotations

from riskdistill.geometry import BevGrid
from riskdistill.models.view_transforms.base import (
    ViewTransform,
    ViewTransformConfig,
    cam_from_ego,
    project_to_images,
)
from riskdistill.models.view_transforms.deformable import DeformableViewTransform, SpatialCrossAttention
from riskdistill.models.view_transforms.lss import LiftSplatViewTransform

VIEW_TRANSFORMS: dict[str, type[ViewTransform]] = {
    "deformable": DeformableViewTransform,
    "lss": LiftSplatViewTransform,
}


def build_view_transform(cfg: ViewTransformConfig, channels: int, grid: BevGrid) -> ViewTransform:
    """The view transform named ``cfg.type``; an unknown name lists the valid ones."""
    if cfg.type not in VIEW_TRANSFORMS:
        raise ValueError(f"unknown view transform {cfg.type!r}; valid: {sorted(VIEW_TRANSFORMS)}")
    return VIEW_TRANSFORMS[cfg.type](cfg, channels, grid)


__all__ = [
    "VIEW_TRANSFORMS",
    "DeformableViewTransform",
    "LiftSplatViewTransform",
    "SpatialCrossAttention",
    "ViewTransform",
    "ViewTransformConfig",
    "build_view_transform",
    "cam_from_ego",
    "project_to_images",
]
