"""The RSD study end to end: record -> label -> train (baseline / RSD / control) -> evaluate -> report.

``run_experiment(cfg, out_dir)`` runs (or resumes) it; ``experiment_config("demo" | "quick" | "full")`` gives
the named configurations. ``riskdistill demo`` and ``riskdistill experiment`` are its command-line faces.
"""

from riskdistill.experiment.config import PRESETS, ExperimentConfig, experiment_config
from riskdistill.experiment.pipeline import ExperimentResult, Pipeline, run_experiment
from riskdistill.experiment.stages import StageRunner

__all__ = [
    "PRESETS",
    "ExperimentConfig",
    "ExperimentResult",
    "Pipeline",
    "StageRunner",
    "experiment_config",
    "run_experiment",
]
