"""Control teachers: labels that carry no risk judgement, for the study's controls.

A control run trains the same RiskHead as RSD on maps written by one of these teachers, through the same
label runner and the same training path (training reads label folders; it never rasterises). A gain of
RSD over a control is then a gain of the teacher's judgement, not of extra supervision.

- ``footprint``: every actor's oriented footprint at one constant ``score``, no motion spread, no ranking:
  "where the objects are" without "which of them matter".
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

import riskdistill
from riskdistill.config import StrictConfig
from riskdistill.data.storage import FrameRecord, annotation_fields
from riskdistill.teacher.schema import FrameLabel, ObjectRisk, Provenance
from riskdistill.types import ActorClass


class FootprintConfig(StrictConfig):
    score: float = Field(default=0.5, gt=0.0, le=1.0)

    def config_hash(self) -> str:
        blob = json.dumps({"teacher": "footprint", **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class FootprintTeacher:
    """Every actor of the frame at ``config.score``; painted as its footprint only (``raster_overrides``:
    no spread along the motion)."""

    kind: ClassVar[str] = "footprint"
    raster_overrides: ClassVar[dict[str, Any]] = {"horizon_s": 0.0}

    def __init__(self, config: FootprintConfig | None = None):
        self.config = config or FootprintConfig()
        self._provenance = Provenance(
            teacher="control",
            model_id="riskdistill.teacher.controls.footprint",
            package_version=riskdistill.__version__,
            config_hash=self.config.config_hash(),
            created_utc="",
        )

    def label(self, frame: FrameRecord) -> FrameLabel:
        a = annotation_fields(frame, ("actor_id", "actor_class"), "footprint control teacher")
        ids = np.asarray(a["actor_id"], dtype=np.int64).reshape(-1)
        cls = np.asarray(a["actor_class"], dtype=np.int64).reshape(-1)
        known = {int(c) for c in ActorClass}
        objects = [
            ObjectRisk(
                object_id=int(i),
                cls=ActorClass(int(c)).name.lower() if int(c) in known else "unknown",
                risk=self.config.score,
                rank=k + 1,
                reason="control: footprint at a constant score",
            )
            for k, (i, c) in enumerate(sorted(zip(ids.tolist(), cls.tolist(), strict=True)))
        ]
        return FrameLabel(
            frame_id=frame.frame_id,
            objects=objects,
            frame_risk=self.config.score if objects else 0.0,
            summary="control labels: every object at one score",
            provenance=self._provenance,
        )
