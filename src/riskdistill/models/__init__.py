"""Students: a camera -> BEV end-to-end planner with plug-in heads and the RiskHead (see ``docs/models.md``).

from riskdistill.models import build_student, student_config
student = build_student(student_config("tiny"))
out = student(batch.observation)                 # "bev", "waypoints", "occupancy", "risk"
losses = student.losses(out, batch.targets)      # "planning", "occupancy", "risk", "total"
"""

from riskdistill.models.adapter import RiskHeadAdapter, attach_risk_head
from riskdistill.models.config import PRESETS, HeadsConfig, StudentConfig, student_config
from riskdistill.models.driver import StudentDriver
from riskdistill.models.export import export_onnx
from riskdistill.models.heads import (
    Head,
    HeadConfig,
    RiskHeadConfig,
    RiskLossConfig,
    compute_risk_loss,
    get_head,
    list_heads,
    register_head,
)
from riskdistill.models.io import load_student, save_student
from riskdistill.models.student import Student, build_student, count_parameters

__all__ = [
    "PRESETS",
    "Head",
    "HeadConfig",
    "HeadsConfig",
    "RiskHeadAdapter",
    "RiskHeadConfig",
    "RiskLossConfig",
    "Student",
    "StudentConfig",
    "StudentDriver",
    "attach_risk_head",
    "build_student",
    "compute_risk_loss",
    "count_parameters",
    "export_onnx",
    "get_head",
    "list_heads",
    "load_student",
    "register_head",
    "save_student",
    "student_config",
]
