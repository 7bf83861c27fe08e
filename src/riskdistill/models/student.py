"""The student: cameras -> BEV -> heads (planning, occupancy, RiskHead).

    images [B, N, 3, H, W] --backbone+neck--> [B*N, C, H/s, W/s]
        --view transform (K, T_ego_from_cam)--> BEV [B, C, Hb, Wb] --(temporal fusion)--> BEV encoder
        --> "bev" [B, C, Hb, Wb] --> heads: "waypoints" [B, 6, 2], "occupancy" [B, 5, H, W] logits,
            "risk" [B, 1, H, W] in [0, 1]   (H, W = cfg.bev_grid().shape)

``forward(obs, with_risk=False)`` skips the RiskHead (no cost) unless ``risk_gated_features`` makes the
risk map part of the driving path (then it is computed but not returned).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from riskdistill.contracts.batch import Observation, Targets
from riskdistill.models.backbone import ImageBackbone
from riskdistill.models.bev_encoder import BevEncoder, TemporalFusion
from riskdistill.models.config import StudentConfig
from riskdistill.models.heads import Head, get_head
from riskdistill.models.view_transforms import build_view_transform


class Student(nn.Module):
    """Build with :func:`build_student`. See the module docstring for shapes."""

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.cfg = cfg
        self.grid = cfg.bev_grid()
        c = cfg.channels
        self.backbone = ImageBackbone(cfg.backbone, c)
        self.view_transform = build_view_transform(cfg.view, c, self.grid)
        self.temporal = TemporalFusion(c) if cfg.temporal.enabled else None
        self.bev_encoder = BevEncoder(cfg.bev_encoder, c)
        bev_hw = tuple(cfg.view.bev_hw)
        self.heads = nn.ModuleDict(
            {name: get_head(name)(cfg.heads.root[name], c, bev_hw, self.grid) for name in cfg.heads.enabled()}
        )
        self.risk_gate = None
        if cfg.risk_gated_features:
            self.risk_gate = nn.Conv2d(1, c, 1)
            nn.init.zeros_(self.risk_gate.weight)
            nn.init.zeros_(self.risk_gate.bias)

    # ---------------------------------------------------------------------------------- properties
    @property
    def has_risk_head(self) -> bool:
        return "risk" in self.heads

    @property
    def target_names(self) -> list[str]:
        """``data.targets`` builder names the losses need (e.g. ``["future_trajectory", "risk_map"]``)."""
        return self.cfg.target_names

    # ---------------------------------------------------------------------------------- forward
    def encode_bev(self, obs: Observation) -> torch.Tensor:
        """The shared BEV features ``[B, C, Hb, Wb]``."""
        return self.encode(obs)[1]

    def encode(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
        """The camera features ``[B, N, C, Hf, Wf]`` of the current images and the shared BEV features."""
        feats, _, bev = self._encode(obs)
        return feats, bev

    def _encode(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Camera features, the lifted BEV (the BEV encoder's input) and the shared BEV features."""
        feats, bev = self._images_to_bev(obs.images, obs)
        if self.temporal is not None:
            prev = None
            if obs.prev_images is not None and obs.prev_images.shape[1] > 0:
                with torch.no_grad():
                    prev = self._images_to_bev(obs.prev_images[:, -1], obs)[1]
            pv = obs.prev_valid[:, -1] if obs.prev_valid is not None and prev is not None else None
            bev = self.temporal(bev, prev, pv)
        return feats, bev, self.bev_encoder(bev)

    def _images_to_bev(self, images: torch.Tensor, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"Observation.images must be [B, N_cam, 3, H, W], got {tuple(images.shape)}")
        b, n, _, h, w = images.shape
        feats = self.backbone(images.flatten(0, 1))  # [B*N, C, Hf, Wf]
        feats = feats.view(b, n, *feats.shape[1:])
        valid = obs.camera_valid.bool()
        feats = feats * valid.view(b, n, 1, 1, 1).to(feats.dtype)  # dropped cameras contribute nothing
        return feats, self.view_transform(feats, obs.K, obs.T_ego_from_cam, valid, (h, w))

    def forward(self, obs: Observation, *, with_risk: bool | None = None) -> dict[str, torch.Tensor]:
        """Outputs: ``bev``, ``waypoints``, ``occupancy`` (if that head is on) and ``risk`` (if the RiskHead
        is on and ``with_risk`` is not False). ``with_risk=True`` without a RiskHead is an error."""
        if with_risk is None:
            with_risk = self.has_risk_head
        if with_risk and not self.has_risk_head:
            raise ValueError("with_risk=True but this student has no RiskHead (heads.risk.enabled is False)")
        feats, lifted, bev = self._encode(obs)
        out: dict[str, torch.Tensor] = {"bev": bev}
        # what each BEV head reads: the shared features, except where the RiskHead attaches lower
        # (risk_reads="lifted") and where the planner reads them gated by risk (risk_gated_features)
        reads = {"risk": lifted if self.cfg.risk_reads == "lifted" else bev}
        if self.risk_gate is not None:  # the risk map is on the driving path: compute it first
            risk = self.heads["risk"](reads["risk"], obs)["risk"]
            if with_risk:
                out["risk"] = risk
            r = F.adaptive_avg_pool2d(risk, bev.shape[-2:])  # [B, 1, Hb, Wb]
            reads["planning"] = bev * (1.0 + self.risk_gate(r))
        for name, head in self._run_order:
            if (name == "risk" and self.risk_gate is not None) or (
                head.optional_at_inference and not with_risk
            ):
                continue
            if head.train_only and not self.training:
                continue
            if head.reads == "image":
                out.update(head(feats, obs))
                continue
            out.update(head(reads.get(name, bev), obs))
        return out

    @property
    def _run_order(self) -> list[tuple[str, Head]]:
        """Heads in the order they run: the ones driving can do without (the RiskHead) first, then
        perception, the planner last (it reads the features the others shape). A fixed order also fixes
        the order in which their gradients add up in the shared BEV features."""
        return sorted(
            self.heads.items(), key=lambda kv: (not kv[1].optional_at_inference, kv[0] == "planning")
        )

    def plan(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The ``[B, 6, 2]`` waypoints a driver hands the controller (the planning head's :meth:`plan`)."""
        return self.heads["planning"].plan(outputs)

    # ---------------------------------------------------------------------------------- training
    def losses(
        self, outputs: dict[str, torch.Tensor], targets: Targets, *, step: int | None = None
    ) -> dict[str, torch.Tensor]:
        """One weighted scalar per head plus ``total``. ``step`` drives the risk-loss schedule. A
        training-only head (``train_only``) has no outputs in eval mode and so no loss there (validation)."""
        out: dict[str, torch.Tensor] = {}
        for name, head in self.heads.items():
            if head.train_only and not self.training and not all(k in outputs for k in head.output_keys):
                continue
            out[name] = getattr(self.cfg.heads, name).weight * head.loss(outputs, targets, step)
        out["total"] = torch.stack(list(out.values())).sum()
        return out

    @torch.no_grad()
    def metrics(self, outputs: dict[str, torch.Tensor], targets: Targets) -> dict[str, float]:
        """Per-head metrics (``planning_l1_m``, ``planning_l2_m``, ``occupancy_iou``, ``risk_l1``, ...);
        heads whose output or target is missing are left out."""
        out: dict[str, float] = {}
        for head in self.heads.values():
            head: Head
            if all(k in outputs for k in head.output_keys) and all(
                getattr(targets, f) is not None for f in head.target_fields
            ):
                out.update(head.metrics(outputs, targets))
        return out


def build_student(cfg: StudentConfig) -> Student:
    """A freshly initialised student for ``cfg``."""
    if not isinstance(cfg, StudentConfig):
        raise TypeError(f"build_student expects a StudentConfig, got {type(cfg).__name__}")
    return Student(cfg)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
