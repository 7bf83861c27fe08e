"""The training configuration: :class:`TrainConfig` and its sections, JSON loading and dotted overrides.

A config is built from (lowest priority first) the defaults, a JSON file, the command-line options and
``--set key.sub=value`` overrides (:func:`load_train_config`). ``model`` may be given partially: a dict with a
``preset`` (default ``tiny``) and nested overrides is expanded with ``riskdistill.models.student_config``, so
a file can say ``{"model": {"preset": "base", "heads": {"risk": {"weight": 2.0}}}}``.

Every resolved config is complete and validated; ``TrainConfig.from_dict(cfg.to_dict()) == cfg``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from riskdistill.config import ConfigError, StrictConfig, apply_overrides, deep_merge
from riskdistill.contracts.labels import default_label_dir
from riskdistill.data.frame_cache import default_cache_dir
from riskdistill.data.torch_dataset import AugmentConfig
from riskdistill.io import load_json_object
from riskdistill.models import PRESETS, StudentConfig, student_config
from riskdistill.training.targets import RISK_TARGET_MODES

RiskTargets = Literal["teacher", "off", "shuffled"]
assert set(RiskTargets.__args__) == set(RISK_TARGET_MODES)  # type: ignore[attr-defined]


class DataConfig(StrictConfig):
    """Where the frames come from and how they are batched.

    ``cameras`` / ``image_hw`` default to the model's (``model.cameras`` / ``model.image_hw``); giving both
    with different values is an error. ``labels`` defaults to ``<root>/labels/risk``. Routes are split into
    train / val by ``riskdistill.data.torch_dataset.split_routes(val_fraction, split_seed)``.
    """

    root: str = Field(min_length=1, description="a data set folder written by `riskdistill sim record`")
    extra_roots: list[str] = Field(
        default_factory=list,
        description="more recorded data sets trained on together with root (e.g. a DAgger recording, "
        "`sim record --dagger`); each with its own labels (<root>/labels/risk) and frame cache, the same "
        "route split",
    )
    labels: str | None = Field(default=None, description="risk label folder (default <root>/labels/risk)")
    cameras: list[str] | None = None
    image_hw: tuple[int, int] | None = None
    image_dtype: Literal["float", "uint8"] = "float"
    prev_frames: int = Field(default=0, ge=0)
    val_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    split_seed: int = 0
    batch_size: int = Field(default=4, ge=1, description="per process")
    val_batch_size: int | None = Field(default=None, ge=1, description="default: batch_size")
    num_workers: int = Field(default=0, ge=0)
    max_train_samples: int | None = Field(default=None, ge=1, description="first N train frames only")
    max_val_samples: int | None = Field(default=None, ge=1)
    on_error: Literal["skip", "raise"] = "skip"
    scenario_repeat: dict[str, int] = Field(
        default_factory=dict,
        description="repeat factor sampling: each training frame of a named scenario type is drawn this "
        'many times per epoch (e.g. {"ParkedObstacle": 3} for a manoeuvre the student rarely sees); '
        "others once; a name no training frame has is an error",
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    image_cache: str | None = Field(
        default=None,
        description="decoded-frame cache folder (riskdistill.data.frame_cache): 'auto' = "
        "<root>/cache/frames; None: decode the JPEGs of every sample",
    )

    @field_validator("scenario_repeat")
    @classmethod
    def _repeat(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if n < 1}
        if bad:
            raise ValueError(f"scenario_repeat factors must be >= 1, got {bad}")
        return v

    @property
    def roots(self) -> list[str]:
        """``root`` and ``extra_roots``."""
        return [self.root, *self.extra_roots]

    def image_cache_dir(self, root: str | None = None) -> Path | None:
        """The frame cache folder of ``root`` (default: ``root``); None: no cache. An explicit
        ``image_cache`` folder is ``root``'s; extra roots use their default folder."""
        if self.image_cache is None:
            return None
        if self.image_cache == "auto" or (root is not None and root != self.root):
            return default_cache_dir(root or self.root)
        return Path(self.image_cache)

    def label_dir(self, root: str | None = None) -> Path:
        """The risk label folder of ``root`` (default: ``root``): ``labels`` for ``root``, the default folder
        of the others."""
        if root is not None and root != self.root:
            return default_label_dir(root)
        return Path(self.labels) if self.labels is not None else default_label_dir(self.root)


class OptimizerConfig(StrictConfig):
    """AdamW; weight decay applies to weight matrices / kernels only (not to biases and norms)."""

    lr: float = Field(default=2e-4, gt=0.0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(default=1e-8, gt=0.0)


class ScheduleConfig(StrictConfig):
    """Linear warm-up from ``lr / warmup_steps`` to ``lr``, then cosine to ``lr * min_lr_ratio`` at
    ``total_steps`` (default: the run's length; fix it when you plan to extend ``max_steps`` on resume)."""

    warmup_steps: int = Field(default=0, ge=0)
    min_lr_ratio: float = Field(default=0.0, ge=0.0, le=1.0)
    total_steps: int | None = Field(default=None, ge=1)


class TrainConfig(StrictConfig):
    """One training run (see ``docs/training.md``). ``risk_targets`` picks the run type:

    - ``off``: the baseline, RiskHead disabled, no risk targets;
    - ``teacher``: the RiskHead learns the maps of ``data.labels`` (RSD with the teacher's labels, or a
      control with a control teacher's labels, e.g. ``riskdistill label --teacher footprint``);
    - ``shuffled``: control, every frame gets another frame's teacher map (seeded by ``shuffle_seed``).
    """

    data: DataConfig
    model: StudentConfig = Field(default_factory=lambda: student_config("tiny"))
    risk_targets: RiskTargets = "teacher"
    init_weights: str | None = Field(
        default=None,
        description="a fresh run starts its image backbone from these weights (builtin:<name> or a path)",
    )
    init_weights_prefixes: list[str] = Field(
        default_factory=lambda: ["backbone."],
        min_length=1,
        description="which tensors init_weights copies, by name prefix (e.g. add view_transform., "
        "bev_encoder., heads.planning. to fine-tune a whole trained student); !prefix leaves those out "
        "(!heads.planning.out.: the waypoint output layer starts fresh)",
    )
    shuffle_seed: int = 0
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    max_steps: int | None = Field(default=None, ge=1, description="optimizer steps; wins over epochs")
    epochs: int = Field(default=1, ge=1)
    grad_clip_norm: float | None = Field(default=1.0, gt=0.0)
    amp: Literal["off", "bf16", "fp16"] = Field(default="off", description="CUDA only; off on the CPU")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    cpu_threads: int | None = Field(default=None, ge=1, description="torch threads per process")
    channels_last: bool = Field(
        default=False, description="convolution weights and activations in channels-last memory format"
    )
    log_every_steps: int = Field(default=10, ge=1)
    bev_grad_every_steps: int | None = Field(
        default=50,
        ge=1,
        description="log every head loss's gradient norm at the BEV features every N steps (None: never)",
    )
    val_every_steps: int | None = Field(default=None, ge=1, description="None: at the end only")
    checkpoint_every_steps: int | None = Field(default=500, ge=1, description="None: final only")
    keep_last_checkpoints: int = Field(default=2, ge=0)
    progress: bool = True
    tensorboard: bool = True
    tensorboard_images_every_steps: int | None = Field(
        default=100,
        ge=1,
        description="predicted vs teacher risk maps to TensorBoard every N steps; None: off",
    )
    ddp_find_unused_parameters: bool = Field(
        default=True, description="needed when some parameters get no gradient (e.g. unused backbone stages)"
    )

    @field_validator("init_weights_prefixes")
    @classmethod
    def _some_prefix_copies(cls, v: list[str]) -> list[str]:
        from riskdistill.models.io import split_prefixes

        if not split_prefixes(v)[0] or any(p in ("", "!") for p in v):
            raise ValueError(f"init_weights_prefixes {v}: needs a prefix to copy, and no empty entry")
        return v

    @model_validator(mode="before")
    @classmethod
    def _expand_model(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("model", {}), dict):
            return data
        data = dict(data)
        m = copy.deepcopy(data.get("model", {}))
        mode = data.get("risk_targets", "teacher")
        heads = m.setdefault("heads", {})
        if isinstance(heads, dict) and isinstance(heads.setdefault("risk", {}), dict):
            heads["risk"].setdefault("enabled", mode != "off")
        preset = m.pop("preset", "tiny")
        complete = set(StudentConfig.model_fields) <= set(m) | {"preset"}
        try:
            if preset not in PRESETS and complete:  # a fully specified custom student (e.g. saved config)
                data["model"] = StudentConfig.from_dict({**m, "preset": preset}, source="model")
            else:
                data["model"] = student_config(preset, **m)
        except ValueError as exc:  # ConfigError included: unknown keys list the valid ones
            raise ValueError(f"model: {exc}") from exc
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        risk_on = self.model.heads.risk.enabled
        if self.risk_targets == "off" and risk_on:
            raise ValueError("risk_targets='off' (the baseline) needs model.heads.risk.enabled=false")
        if self.risk_targets != "off" and not risk_on:
            raise ValueError(
                f"risk_targets={self.risk_targets!r} trains the RiskHead: set model.heads.risk.enabled=true "
                f"(or risk_targets='off' for the baseline)"
            )
        d, m = self.data, self.model
        if d.image_hw is not None and tuple(m.image_hw) != tuple(d.image_hw):
            raise ValueError(
                f"data.image_hw {list(d.image_hw)} differs from model.image_hw {list(m.image_hw)}"
            )
        if d.cameras is not None and m.cameras is not None and list(d.cameras) != list(m.cameras):
            raise ValueError(f"data.cameras {d.cameras} differs from model.cameras {m.cameras}")
        return self

    # -------------------------------------------------------------------------------------- derived
    @property
    def cameras(self) -> list[str] | None:
        return self.data.cameras if self.data.cameras is not None else self.model.cameras

    @property
    def image_hw(self) -> tuple[int, int]:
        hw = self.data.image_hw if self.data.image_hw is not None else self.model.image_hw
        return (int(hw[0]), int(hw[1]))


# ------------------------------------------------------------------------------------------ overrides
def load_train_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults < JSON file ``path`` < ``base`` (e.g. command-line options, nested) < ``overrides``."""
    data: dict[str, Any] = {}
    source = "<arguments>"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        data = load_json_object(path, ConfigError)
        source = str(path)
    data = deep_merge(data, base or {})
    data = apply_overrides(data, overrides)
    if overrides:
        source += f" with overrides {list(overrides)}"
    return TrainConfig.from_dict(data, source=source)


# ------------------------------------------------------------------------------------------ drift
#: Keys that may change between a run and its resumption (everything else is config drift).
RESUME_ALLOWED = frozenset(
    {
        "data.num_workers",
        "data.image_cache",
        "data.val_batch_size",
        "data.max_val_samples",
        "max_steps",
        "epochs",
        "cpu_threads",
        "log_every_steps",
        "bev_grad_every_steps",
        "val_every_steps",
        "checkpoint_every_steps",
        "keep_last_checkpoints",
        "progress",
        "tensorboard",
        "tensorboard_images_every_steps",
        "ddp_find_unused_parameters",
    }
)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are values)."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def config_drift(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved, current)}`` for every dotted key whose value differs, allowed or not."""
    a, b = flatten(saved), flatten(current)
    missing = "<absent>"
    keys = sorted(set(a) | set(b))
    return {k: (a.get(k, missing), b.get(k, missing)) for k in keys if a.get(k, missing) != b.get(k, missing)}
