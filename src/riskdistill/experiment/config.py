"""The experiment's configuration: which data to record, which teacher, which students, which evaluations.

One :class:`ExperimentConfig` describes the whole RSD study:
``seeds x variants x (nominal rig + shifted rigs) x (bench routes incl. held-out scenarios)``.
``riskdistill demo`` runs the ``demo`` preset (``quick`` for tests); ``riskdistill experiment`` takes a preset
or a JSON file. Variants:

- ``baseline``: the student without RiskHead (planning + perception heads only);
- ``rsd``: the same student with the RiskHead trained on the teacher's risk maps;
- the controls, the same RiskHead trained on maps without the teacher's risk judgement, which tell whether a
  gain comes from the teacher or from any extra supervision:

  - ``shuffled``: the teacher's maps, each frame given another frame's map, re-drawn every epoch;
  - ``corridor``: the expert's future path as a corridor at the teacher maps' statistics (plan
    supervision through the RiskHead, no risk semantics), labels in ``data/train/labels/control-corridor``;
  - ``footprint``: every object's footprint at one score, labels in ``data/train/labels/control-footprint``;
  - ``control``: one of these, named by ``train.control_targets`` (the ``demo`` / ``full`` presets).

A study split over machines runs one part per seed (``seeds`` = that seed, ``all_seeds`` = the study's
seeds); ``riskdistill experiment merge`` combines the parts (``experiment/study.py``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from riskdistill.config import StrictConfig, deep_merge
from riskdistill.geometry import BEV_GRID_PRESETS

Variant = Literal["baseline", "rsd", "control", "shuffled", "corridor", "footprint"]
RISK_TARGETS: dict[str, str] = {"baseline": "off", "rsd": "teacher"}
ControlTargets = Literal["shuffled", "corridor", "footprint"]
#: Controls trained on a control teacher's label folder (the others: ``shuffled``, a target builder).
CONTROL_TEACHERS = ("corridor", "footprint")


class DataPlan(StrictConfig):
    """Recording: ``train_routes`` spread over the ``train`` suite; ``bench_routes_per_type`` routes of every
    ``bench`` scenario type (held-out scenario and layout included) for open- and closed-loop evaluation,
    optionally thinned to ``bench_max_routes`` spread over the types."""

    rig: str = "bench2drive"
    image_hw: tuple[int, int] | None = None  # None: the student preset's (ExperimentConfig.image_hw)
    every_n_steps: int = Field(2, ge=1)
    steer_noise: float = Field(0.0, ge=0.0, le=1.0)  # recovery data in the train recording (0: none)
    crossing_walkers: int = Field(0, ge=0)  # pedestrians per train route who cross the route (0: none)
    bench_every_n_steps: int | None = Field(4, ge=1)  # bench frames for open loop (None: every_n_steps)
    train_routes: int = Field(24, ge=1)
    bench_routes_per_type: int = Field(1, ge=1)
    bench_max_routes: int | None = Field(None, ge=1)  # spread that many over the bench subset (None: all)
    max_steps: int | None = Field(None, ge=10)  # cap per recorded route (None: the whole route)


class TeacherPlan(StrictConfig):
    """The teacher that labels the training frames (``oracle``: privileged, VLM-free)."""

    kind: Literal["oracle", "vlm"] = "oracle"
    grid: Literal["tiny", "base"] | None = None  # None: the student preset's (ExperimentConfig.teacher_grid)
    options: dict[str, Any] = Field(default_factory=dict)  # passed to the label command (e.g. backend, model)


class TrainPlan(StrictConfig):
    """Student training; every variant gets exactly the same budget, data order and seed."""

    preset: Literal["cpu", "tiny", "base"] = "cpu"
    max_steps: int = Field(500, ge=1)
    batch_size: int = Field(8, ge=1)
    num_workers: int = Field(1, ge=0)
    control_targets: ControlTargets = "shuffled"  # what the variant "control" is
    overrides: list[str] = Field(default_factory=list)  # dotted ``key=value`` overrides of the train config


class EvalPlan(StrictConfig):
    """Evaluation: open loop on the recorded bench frames; closed loop on ``closed_loop_routes`` bench routes
    (spread over the scenario types) with the nominal rig and each of ``rig_shifts``. With ``rerun`` the
    nominal-rig runs also write a Rerun recording per route (``closed_loop-nominal/rerun/<route_id>.rrd``,
    every ``rerun_every``-th simulator step)."""

    closed_loop_routes: int | None = Field(8, ge=1)  # None: every recorded bench route
    rig_shifts: list[str] = Field(default_factory=lambda: ["pitch-3deg"])
    max_route_steps: int | None = Field(None, ge=10)
    rerun: bool = True
    rerun_every: int = Field(2, ge=1)


class ExperimentConfig(StrictConfig):
    name: str = "rsd"
    seeds: list[int] = Field(default_factory=lambda: [0])
    all_seeds: list[int] | None = None  # the study's seeds when this run is one part of it (None: seeds)
    variants: list[Variant] = Field(default_factory=lambda: ["baseline", "rsd"])
    workers: int = Field(2, ge=1)
    data: DataPlan = Field(default_factory=DataPlan)
    teacher: TeacherPlan = Field(default_factory=TeacherPlan)
    train: TrainPlan = Field(default_factory=TrainPlan)
    eval: EvalPlan = Field(default_factory=EvalPlan)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {v}")
        return v

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"variants must be a non-empty list without repeats, got {v}")
        return v

    @model_validator(mode="after")
    def _seeds_of_the_study(self) -> ExperimentConfig:
        if self.all_seeds is not None:
            if len(set(self.all_seeds)) != len(self.all_seeds):
                raise ValueError(f"all_seeds must not repeat, got {self.all_seeds}")
            outside = [s for s in self.seeds if s not in self.all_seeds]
            if outside:
                raise ValueError(
                    f"seeds {outside} are not among the study's seeds all_seeds={self.all_seeds}"
                )
        from riskdistill.evaluation.generalisation import parse_rig_shift

        for shift in self.eval.rig_shifts:
            parse_rig_shift(shift)  # a bad rig shift fails at load, not after training
        if len(set(self.eval.rig_shifts)) != len(self.eval.rig_shifts) or "nominal" in self.eval.rig_shifts:
            raise ValueError(
                f"eval.rig_shifts must be distinct shifts other than nominal, got {self.eval.rig_shifts}"
            )
        return self

    @property
    def study_seeds(self) -> list[int]:
        """Every seed of the study (``all_seeds``, else ``seeds``)."""
        return list(self.all_seeds if self.all_seeds is not None else self.seeds)

    @property
    def rigs(self) -> list[str]:
        """``nominal`` and the rig shifts, in order."""
        return ["nominal", *self.eval.rig_shifts]

    def control_kind(self, variant: str) -> str | None:
        """What a control variant trains on (``shuffled``, ``corridor``, ``footprint``); None otherwise."""
        if variant == "control":
            return self.train.control_targets
        return variant if variant in ("shuffled", *CONTROL_TEACHERS) else None

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The study's comparisons ``(a, b)`` as ``a - b``: RSD against the baseline and against every
        control (without RSD: every variant against the first)."""
        if "rsd" in self.variants:
            return [("rsd", v) for v in self.variants if v != "rsd"]
        return [(v, self.variants[0]) for v in self.variants[1:]]

    @model_validator(mode="after")
    def _consistent_with_the_student(self) -> ExperimentConfig:
        """Image size and teacher grid come with the student preset; set against it, they are an error
        (``--set train.preset=base`` must not train on the cpu recipe's images or grid)."""
        student = self.student_preset
        overridden = {o.split("=", 1)[0].strip() for o in self.train.overrides}
        if (
            self.data.image_hw is not None
            and tuple(self.data.image_hw) != tuple(student["image_hw"])
            and "model.image_hw" not in overridden
        ):
            raise ValueError(
                f"data.image_hw {list(self.data.image_hw)} differs from the {self.train.preset!r} student's "
                f"image_hw {list(student['image_hw'])}; leave data.image_hw unset (it follows the student) "
                "or also set train.overrides model.image_hw"
            )
        if self.teacher.grid is not None and BEV_GRID_PRESETS[self.teacher.grid] != student["grid"]:
            raise ValueError(
                f"teacher.grid {self.teacher.grid!r} {BEV_GRID_PRESETS[self.teacher.grid]} differs from the "
                f"{self.train.preset!r} student's grid {student['grid']}; leave teacher.grid unset"
            )
        return self

    @property
    def student_preset(self) -> dict[str, Any]:
        from riskdistill.models.config import PRESETS as STUDENT_PRESETS

        return STUDENT_PRESETS[self.train.preset]

    @property
    def image_hw(self) -> tuple[int, int]:
        """The image size recorded and trained on: ``data.image_hw``, else the student preset's."""
        hw = self.data.image_hw if self.data.image_hw is not None else self.student_preset["image_hw"]
        return (int(hw[0]), int(hw[1]))

    @property
    def teacher_grid(self) -> str:
        """The BEV grid preset of the teacher's maps: ``teacher.grid``, else the student's grid."""
        if self.teacher.grid is not None:
            return self.teacher.grid
        want = self.student_preset["grid"]
        return next(name for name, g in BEV_GRID_PRESETS.items() if g == want)


#: Named configurations. ``demo``: ``make demo`` (the study's recipe at a small budget); ``quick``: the same
#: pipeline in a few minutes (tests); ``study``: the committed RSD study, run one seed per machine
#: (``--seeds 1``) and merged (``riskdistill experiment merge``); ``full``: the study with seeds and controls
#: (GPU-sized with ``train.preset=base``).
#: The cpu preset's image backbone pretrained in the simulator (``riskdistill/weights/cpu_sim_backbone.json``
#: says how); the shipped student below was trained from it, and probes that train from scratch start there.
SIM_BACKBONE = "builtin:cpu_sim_backbone"
#: The whole cpu student of the same run, without RiskHead (``riskdistill/weights/cpu_sim_student.json``): the
#: study fine-tunes it per variant, so a part fits two hours on 2 cores.
SIM_STUDENT = "builtin:cpu_sim_student"
#: Train overrides that fine-tune SIM_STUDENT: every tensor but the RiskHead's is copied (a variant with a
#: RiskHead starts it fresh); the planner keeps the waypoint parametrisation it was trained with; a lower
#: learning rate with a short warm-up; the augmentation of its training run.
STUDENT_FINETUNE = [
    f"init_weights={SIM_STUDENT}",
    'init_weights_prefixes=["backbone.", "view_transform.", "bev_encoder.", "heads.planning.", '
    '"heads.occupancy.", "heads.image_aux."]',
    "model.heads.planning.waypoint_prior=none",
    "optimizer.lr=3e-4",
    "schedule.warmup_steps=50",
    "schedule.min_lr_ratio=0.05",
    "data.max_val_samples=600",
    "data.augment.rotation_max_deg=5.0",
    "data.augment.brightness=0.2",
    "data.augment.contrast=0.2",
    "channels_last=true",
]

#: The same student after 4,000 more steps on 128x352 images (results/perception's hires_long: vehicle IoU
#: 0.362, DS 61.57 on one draw; ``riskdistill/weights/cpu_sim_student_128x352.json``), and the overrides that
#: fine-tune it: STUDENT_FINETUNE with these weights, the student reading 128x352 (record the data so).
SIM_STUDENT_128 = "builtin:cpu_sim_student_128x352"
STUDENT_FINETUNE_128 = [
    f"init_weights={SIM_STUDENT_128}",
    *(o for o in STUDENT_FINETUNE if not o.startswith("init_weights=")),
    "model.image_hw=[128,352]",
]

PRESETS: dict[str, dict[str, Any]] = {
    # The study's recipe at a demo budget: every variant fine-tunes the shipped cpu student (SIM_STUDENT) for
    # 300 steps, RSD with a fresh RiskHead; 24 train routes; 8 closed-loop routes. A Rerun recording of each
    # nominal route at the 2 Hz planning rate (every 5th step: each recorded frame shows a fresh plan).
    "demo": {
        "name": "demo",
        "data": {"steer_noise": 0.25},  # recovery data, as in the cpu recipe
        "train": {"max_steps": 300, "overrides": STUDENT_FINETUNE},
        "eval": {"rerun_every": 5},
    },
    "quick": {
        "name": "quick",
        "data": {"train_routes": 3, "bench_max_routes": 3, "every_n_steps": 5, "max_steps": 120},
        "train": {"max_steps": 6, "batch_size": 2, "num_workers": 0},
        "eval": {"closed_loop_routes": 2, "max_route_steps": 60},
    },
    # The RSD study on 2 CPU cores, one part per seed (docs/experiment.md, results/study-cpu/). Every variant
    # of a seed fine-tunes the same shipped cpu student (SIM_STUDENT, trained 6,000 steps without RiskHead)
    # for the same steps, data order and seed: the baseline without RiskHead, RSD with a fresh RiskHead on
    # the oracle's maps, the corridor control with the same fresh RiskHead on the expert's path painted at
    # the teacher maps' statistics. All 125 bench routes under the nominal rig and three shifts (lower
    # cameras, tilted up 3 degrees, a dead front-left camera). One seed in one part on 2 free cores
    # (results/study-cpu-2; docs/benchmarks.md): 1.18 h on an AMD EPYC (recording 5 min, labelling 3,
    # training 3 x 5, open loop 3 x 3, closed loop 12 x 2.7-3.3, report 2.4), 1.63 h on an Intel Xeon with
    # AVX512 (8, 5.6, 3 x 7.4-7.9, 3 x 4, 12 x 3.5-4.1, 2.8). At results/study-cpu's commit (before the driver
    # reused repeated observations): ~3.3 h on an Intel Xeon.
    "study": {
        "name": "study",
        "seeds": [0, 1, 2],
        "variants": ["baseline", "rsd", "corridor"],
        "data": {
            "train_routes": 192,  # the whole train suite
            "every_n_steps": 2,
            "steer_noise": 0.25,
            "bench_routes_per_type": 5,  # all 125 bench routes (25 types x 5)
            "bench_every_n_steps": 4,
        },
        "train": {
            "preset": "cpu",
            "max_steps": 1000,
            "batch_size": 8,
            "num_workers": 1,
            "overrides": STUDENT_FINETUNE,
        },
        "eval": {
            "closed_loop_routes": None,  # every bench route
            "rig_shifts": ["height-0.3", "pitch-3deg", "drop-CAM_FRONT_LEFT"],
            "max_route_steps": None,  # each scenario's own timeout, as in Bench2Drive
            "rerun": False,
        },
    },
    "full": {
        "name": "full",
        "seeds": [0, 1, 2],
        "variants": ["baseline", "rsd", "control"],
        "data": {
            "train_routes": 192,
            "bench_routes_per_type": 5,
            "every_n_steps": 1,
            "bench_every_n_steps": 2,
        },
        "train": {"max_steps": 20000, "batch_size": 16, "num_workers": 2},
        "eval": {
            "closed_loop_routes": 125,
            "rig_shifts": ["pitch-3deg", "height+0.3", "fov-10", "drop-CAM_BACK"],
        },
    },
}
# The study with the better-seeing student: recorded and fine-tuned at 128x352 from SIM_STUDENT_128, the rest
# as ``study``. Estimated from results/perception's stage costs (record 1.33x, train 1.86x, open loop 1.53x,
# closed loop 1.35x): about 2.4 h per seed in one part on an Intel Xeon, so split a seed by variant.
PRESETS["study-128x352"] = deep_merge(
    PRESETS["study"],
    {"name": "study-128x352", "data": {"image_hw": [128, 352]}, "train": {"overrides": STUDENT_FINETUNE_128}},
)


def experiment_config(preset: str, **overrides: Any) -> ExperimentConfig:
    """A preset (``demo``, ``quick``, ``study``, ``study-128x352``, ``full``) with nested overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown experiment preset {preset!r}; valid presets: {sorted(PRESETS)}")
    merged = deep_merge(PRESETS[preset], overrides)
    return ExperimentConfig.from_dict(merged, source=f"preset {preset!r}")


def config_for_seeds(cfg: ExperimentConfig, seeds: list[int]) -> ExperimentConfig:
    """The part of the study ``cfg`` that runs ``seeds`` (``riskdistill experiment --seeds``): ``seeds`` set,
    ``all_seeds`` kept as the study's; a seed outside the study is an error."""
    study = cfg.study_seeds
    bad = [s for s in seeds if s not in study]
    if bad or not seeds:
        raise ValueError(
            f"--seeds {seeds}: seeds {bad or seeds} are not among the study's seeds {study} "
            "(another set of seeds is another study: --set seeds=[...])"
        )
    return ExperimentConfig.from_dict({**cfg.to_dict(), "seeds": list(seeds), "all_seeds": study})
