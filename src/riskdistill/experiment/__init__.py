"""The RSD study end to end: record -> label -> train (baseline / RSD / control) -> evaluate -> report.

``run_experiment(cfg, out_dir)`` runs (or resumes) it; ``experiment_config("demo" | "quick" | "study" |
"full")`` gives the named configurations; ``merge_study(parts, out)`` merges the parts of a study split by
seed into a result folder. ``riskdistill demo`` and ``riskdistill experiment [merge]`` are its command-line
faces.
"""

from riskdistill.experiment.config import PRESETS, ExperimentConfig, config_for_seeds, experiment_config
from riskdistill.experiment.execution import Execution
from riskdistill.experiment.pipeline import ExperimentResult, Pipeline, run_experiment
from riskdistill.experiment.stages import StageRunner
from riskdistill.experiment.study import MergeError, StudyResult, merge_study

__all__ = [
    "PRESETS",
    "Execution",
    "ExperimentConfig",
    "ExperimentResult",
    "MergeError",
    "Pipeline",
    "StageRunner",
    "StudyResult",
    "config_for_seeds",
    "experiment_config",
    "merge_study",
    "run_experiment",
]
