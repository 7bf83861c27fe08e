"""The risk teacher (offline): label schema (:mod:`~riskdistill.teacher.schema`), grounding
(:mod:`~riskdistill.teacher.grounding`, :mod:`~riskdistill.teacher.detector`), the privileged oracle teacher
(:mod:`~riskdistill.teacher.oracle`), the VLM teacher (:mod:`~riskdistill.teacher.vlm`), the BEV rasteriser
(:mod:`~riskdistill.teacher.rasterise`), the resumable labelling runner (:mod:`~riskdistill.teacher.runner`),
label quality and the label card. See ``docs/teachers.md``, ``docs/labelling.md``, ``docs/label-schema.md``.

Importing this package loads neither torch, transformers nor openai.
"""

from riskdistill.teacher.objects import GroundedObject
from riskdistill.teacher.oracle import OracleConfig, OracleScores, OracleTeacher
from riskdistill.teacher.rasterise import RasterConfig, rasterise_label, rasterise_risk, save_risk_map
from riskdistill.teacher.schema import FrameLabel, ObjectRisk, Provenance

__all__ = [
    "FrameLabel",
    "GroundedObject",
    "ObjectRisk",
    "OracleConfig",
    "OracleScores",
    "OracleTeacher",
    "Provenance",
    "RasterConfig",
    "rasterise_label",
    "rasterise_risk",
    "save_risk_map",
]
