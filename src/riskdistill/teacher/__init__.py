"""The risk teacher: per-object risk labels (:mod:`~riskdistill.teacher.schema`), the ground-truth oracle
teacher (:mod:`~riskdistill.teacher.oracle`) and the rasteriser that turns object risks into the BEV risk
map the RiskHead learns (:mod:`~riskdistill.teacher.rasterise`). See ``docs/label-schema.md``."""

from riskdistill.teacher.oracle import OracleConfig, OracleScores, OracleTeacher
from riskdistill.teacher.rasterise import rasterise_risk, save_risk_map
from riskdistill.teacher.schema import FrameLabel, ObjectRisk, Provenance

__all__ = [
    "FrameLabel",
    "ObjectRisk",
    "OracleConfig",
    "OracleScores",
    "OracleTeacher",
    "Provenance",
    "rasterise_risk",
    "save_risk_map",
]
