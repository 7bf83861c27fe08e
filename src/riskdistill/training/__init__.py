"""Training the student: config (:mod:`~riskdistill.training.config`), the loop
(:mod:`~riskdistill.training.engine`), checkpoints (:mod:`~riskdistill.training.checkpoint`), data parallel
plumbing (:mod:`~riskdistill.training.distributed`) and the control runs' risk targets
(:mod:`~riskdistill.training.targets`). See ``docs/training.md``."""

from riskdistill.training.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from riskdistill.training.config import (
    RESUME_ALLOWED,
    DataConfig,
    OptimizerConfig,
    ScheduleConfig,
    TrainConfig,
    apply_overrides,
    load_train_config,
)
from riskdistill.training.engine import ConfigDriftError, TrainingProcessError, TrainResult, launch, train
from riskdistill.training.logger import read_metrics
from riskdistill.training.targets import (
    RISK_TARGET_MODES,
    ShuffledRiskTarget,
    build_risk_target,
    shuffled_assignment,
)

__all__ = [
    "RESUME_ALLOWED",
    "RISK_TARGET_MODES",
    "CheckpointError",
    "ConfigDriftError",
    "DataConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "ShuffledRiskTarget",
    "TrainConfig",
    "TrainResult",
    "TrainingProcessError",
    "apply_overrides",
    "build_risk_target",
    "latest_checkpoint",
    "launch",
    "load_checkpoint",
    "load_train_config",
    "read_metrics",
    "shuffled_assignment",
    "train",
]
