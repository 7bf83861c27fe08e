"""Plug-in heads on the shared BEV features, registered by name (:func:`get_head`, :func:`list_heads`).

- ``planning`` (:mod:`.planning`): ego query -> 6 waypoints;
- ``occupancy`` (:mod:`.occupancy`): BEV segmentation of ``data.batch.BEV_CHANNELS``;
- ``risk`` (:mod:`.risk`): the RiskHead (risk map distilled from the teacher);
- ``image_aux`` (:mod:`.image_aux`): image-space semantics and depth from the renderer (training only).
"""

from riskdistill.models.heads.base import HEADS, Head, HeadConfig, get_head, list_heads, register_head
from riskdistill.models.heads.image_aux import ImageAuxHead, ImageAuxHeadConfig
from riskdistill.models.heads.occupancy import OccupancyHead, OccupancyHeadConfig
from riskdistill.models.heads.planning import PlanningHead, PlanningHeadConfig
from riskdistill.models.heads.risk import (
    RiskHead,
    RiskHeadConfig,
    RiskHeadModule,
    RiskLossConfig,
    compute_risk_loss,
    compute_risk_metrics,
)

__all__ = [
    "HEADS",
    "Head",
    "HeadConfig",
    "ImageAuxHead",
    "ImageAuxHeadConfig",
    "OccupancyHead",
    "OccupancyHeadConfig",
    "PlanningHead",
    "PlanningHeadConfig",
    "RiskHead",
    "RiskHeadConfig",
    "RiskHeadModule",
    "RiskLossConfig",
    "compute_risk_loss",
    "compute_risk_metrics",
    "get_head",
    "list_heads",
    "register_head",
]
