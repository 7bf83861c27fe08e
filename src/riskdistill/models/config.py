"""The student's configuration: :class:`StudentConfig`, its sub-configs and the presets.

    cfg = student_config("tiny")                                        # CPU-sized
    cfg = student_config("tiny", heads={"risk": {"enabled": False}})    # the baseline (no RiskHead)
    cfg = student_config("base", view={"type": "lss"})                  # ~50M parameters, for GPUs

Overrides are nested dicts merged into the preset before validation, so a typo is an error listing the
valid keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, RootModel, SerializeAsAny, model_validator
from pydantic_core import PydanticUndefined

from riskdistill.config import StrictConfig, deep_merge
from riskdistill.geometry import BEV_GRID_PRESETS, BevGrid
from riskdistill.models.backbone import BackboneConfig
from riskdistill.models.bev_encoder import BevEncoderConfig, TemporalConfig
from riskdistill.models.heads import HeadConfig, get_head
from riskdistill.models.view_transforms import ViewTransformConfig

#: Heads every student config holds (enabled or not); other registered heads are added by name.
DEFAULT_HEADS: tuple[str, ...] = ("planning", "occupancy", "risk")


class HeadsConfig(RootModel[dict[str, SerializeAsAny[HeadConfig]]]):
    """Head name (registry name = file stem in ``models/heads``) -> that head's config. Always holds
    :data:`DEFAULT_HEADS`; any other registered head joins by name (``model.heads.<name>={}``); an unknown
    name is an error listing the registered heads. ``cfg.heads.risk`` reads one entry."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _build(cls, data: Any) -> Any:
        if isinstance(data, HeadsConfig):
            return data.root
        if data is None or data is PydanticUndefined:  # HeadsConfig(): the defaults
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"heads must be a mapping of head name -> config, got {type(data).__name__}")
        out: dict[str, HeadConfig] = {}
        for name in [*DEFAULT_HEADS, *(n for n in data if n not in DEFAULT_HEADS)]:
            config_cls = get_head(name).config_cls
            value = data.get(name, {})
            out[name] = value if isinstance(value, config_cls) else config_cls.model_validate(value)
        return out

    @model_validator(mode="after")
    def _planning_on(self) -> HeadsConfig:
        if not self.root["planning"].enabled:
            raise ValueError("heads.planning.enabled must be True: the student always plans")
        return self

    def __getattr__(self, name: str) -> Any:
        root = self.__dict__.get("root")
        if root is not None and name in root:
            return root[name]
        return super().__getattr__(name)

    def enabled(self) -> list[str]:
        """Names of the enabled heads, in config order."""
        return [n for n, c in self.root.items() if c.enabled]


class StudentConfig(StrictConfig):
    """Everything that defines a student's architecture (saved as ``config.json["model"]``).

    - ``grid``: the output ``BevGrid`` fields (``bev_grid()``); heads predict on its shape;
    - ``image_hw``: the image size the student is trained for (data sets and drivers resize to it);
    - ``cameras``: camera names in model order (None: whatever the data set / rig delivers, in its order);
    - ``channels``: width of image and BEV features;
    - ``risk_gated_features``: ablation beyond the paper: the planning head reads
      ``bev * (1 + gate(risk))`` (a 1x1 conv of the predicted risk map, zero-initialised);
    - ``risk_reads``: where the RiskHead attaches: ``"bev"`` (the shared BEV features every head reads, as in
      the paper) or ``"lifted"`` (ablation: the view transform's output, before the BEV encoder, so the risk
      loss shapes the features the BEV encoder turns into the planner's input).
    """

    preset: str = "custom"
    grid: dict[str, float] = Field(default_factory=lambda: dict(BEV_GRID_PRESETS["tiny"]))
    image_hw: tuple[int, int] = (64, 176)
    cameras: list[str] | None = None
    channels: int = Field(default=64, ge=8)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    view: ViewTransformConfig = Field(default_factory=ViewTransformConfig)
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    bev_encoder: BevEncoderConfig = Field(default_factory=BevEncoderConfig)
    heads: HeadsConfig = Field(default_factory=HeadsConfig)
    risk_gated_features: bool = False
    risk_reads: Literal["bev", "lifted"] = "bev"

    @model_validator(mode="after")
    def _check(self) -> StudentConfig:
        try:
            BevGrid.from_dict(self.grid)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(
                f"grid: not a valid BevGrid ({exc!r}); fields: x_min_m x_max_m y_min_m ..."
            ) from exc
        if self.channels % 4:
            raise ValueError(f"channels must be divisible by 4, got {self.channels}")
        if self.channels % self.view.n_heads:
            raise ValueError(
                f"channels ({self.channels}) must be divisible by view.n_heads ({self.view.n_heads})"
            )
        if self.risk_gated_features and not self.heads.risk.enabled:
            raise ValueError("risk_gated_features needs heads.risk.enabled")
        if self.risk_reads != "bev" and not self.heads.risk.enabled:
            raise ValueError(f"risk_reads={self.risk_reads!r} needs heads.risk.enabled")
        return self

    def bev_grid(self) -> BevGrid:
        return BevGrid.from_dict(self.grid)

    @property
    def target_names(self) -> list[str]:
        """``data.targets`` builder names the enabled heads' losses need."""
        names: list[str] = []
        for head in self.heads.enabled():
            names += [t for t in get_head(head).target_names if t not in names]
        return names


#: Target-speed classes of the ``cpu`` recipe's planner (m/s; 0 = stop).
CPU_SPEED_BINS_MPS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 14.0)

PRESETS: dict[str, dict[str, Any]] = {
    # The recipe that perceives and drives on 2 CPU cores (docs/models.md, "The cpu recipe"): 6 cameras at
    # 64x176, MobileNetV3-small, Simple-BEV lifting to a 32x32 BEV of 64 channels, a planner that predicts a
    # path and a target-speed class from the command, the target point and the speed only, occupancy with
    # per-class weights and Dice (small, rare classes), image-space semantics and depth from the renderer as
    # auxiliary supervision (training only), 64x64 output grid (the teacher's "tiny" grid).
    "cpu": {
        "preset": "cpu",
        "grid": dict(BEV_GRID_PRESETS["tiny"]),
        "image_hw": (64, 176),
        "channels": 64,
        "backbone": {"name": "mobilenetv3_small_100", "out_indices": (2, 3)},
        "view": {"type": "sample", "bev_hw": (32, 32), "heights_m": [0.0, 0.75, 1.5, 2.5]},
        "bev_encoder": {"n_blocks": 3},
        "heads": {
            "planning": {
                "n_layers": 2,
                "n_heads": 4,
                "ffn_dim": 128,
                "ego_inputs": ["speed_mps"],
                "ego_input_dropout": 0.5,
                "path_points": 20,
                "speed_bins_mps": list(CPU_SPEED_BINS_MPS),
                "waypoint_weight": 0.5,
                "waypoint_prior": "kinematic_arc",
            },
            "occupancy": {
                "hidden": 32,
                "channel_pos_weight": [8.0, 30.0, 15.0, 1.0, 3.0],
                "dice_weight": 1.0,
                "weight": 2.0,
            },
            "risk": {"channels": 16, "n_layers": 1, "n_heads": 4, "n_points": 4, "attn_stride": 2},
            "image_aux": {"hidden": 32},
        },
    },
    # 2 CPU cores: 6 cameras at 64x176, MobileNetV3-small, 32x32 BEV of 64 channels, 64x64 output grid
    "tiny": {
        "preset": "tiny",
        "grid": dict(BEV_GRID_PRESETS["tiny"]),
        "image_hw": (64, 176),
        "channels": 64,
        "backbone": {"name": "mobilenetv3_small_100", "out_indices": (2, 3)},
        "view": {"type": "deformable", "bev_hw": (32, 32), "n_heads": 4, "n_points": 1, "n_layers": 1},
        "bev_encoder": {"n_blocks": 2},
        "heads": {
            "planning": {"n_layers": 2, "n_heads": 4, "ffn_dim": 128},
            "occupancy": {"hidden": 32},
            "risk": {"channels": 16, "n_layers": 1, "n_heads": 4, "n_points": 4, "attn_stride": 2},
        },
    },
    # VAD-Base scale for GPUs: ResNet-50, 200x200 BEV of 256 channels at 0.3 m, 6 cameras at 256x704
    "base": {
        "preset": "base",
        "grid": dict(BEV_GRID_PRESETS["base"]),
        "image_hw": (256, 704),
        "channels": 256,
        "backbone": {"name": "resnet50", "out_indices": (2, 3, 4)},
        "view": {
            "type": "deformable",
            "bev_hw": (200, 200),
            "n_heads": 8,
            "n_points": 2,
            "n_layers": 3,
            "ffn_dim": 512,
            "heights_m": [-0.5, 0.5, 1.5, 2.5],
            "depth_bins": 48,
            "depth_min_m": 1.0,
            "depth_max_m": 61.0,
        },
        "bev_encoder": {"n_blocks": 6},
        "heads": {
            "planning": {"n_layers": 3, "n_heads": 8, "ffn_dim": 512},
            "occupancy": {"hidden": 64},
            "risk": {
                "channels": 64,
                "n_layers": 1,
                "n_heads": 8,
                "n_points": 4,
                "attn_stride": 2,
                "upscale": 1,
            },
        },
    },
}


def student_config(preset: str = "tiny", **overrides: Any) -> StudentConfig:
    """A preset (``cpu``, ``tiny`` or ``base``) with nested-dict ``overrides`` merged in, validated."""
    if preset not in PRESETS:
        raise ValueError(f"unknown student preset {preset!r}; valid presets: {sorted(PRESETS)}")
    return StudentConfig.from_dict(
        deep_merge(PRESETS[preset], overrides, replace=("grid",)), source=f"student_config({preset!r})"
    )
