"""Planning head: an ego query attends to the BEV features and decodes the plan.

The ego query is built from the route command (embedding), the target point and the ego state (the
columns ``ego_inputs`` names: the ``cpu`` recipe uses the speed only, so the planner cannot copy its own
last actions from acceleration, yaw rate and steering; ``ego_input_dropout`` hides even that from a share
of the training samples, so that "stopped, so stay stopped" cannot stand in for looking). Queries (ego query
+ a learned per-query embedding) go through ``n_layers`` decoder layers (self-attention among the queries,
cross-attention to the BEV tokens with fixed 2-D position codes, feed-forward):

- 6 waypoint queries: each predicts a displacement; ``waypoints`` ``[B, 6, 2]`` (0.5 s apart) is their
  cumulative sum;
- with ``path_points > 0``, as many path queries: ``path`` ``[B, P, 2]``, the rear-axle path a point every
  ``path_spacing_m`` ahead (where to drive, whatever the speed);
- with ``speed_bins_mps``, one speed query: ``speed_logits`` ``[B, K]`` over target-speed bins (how fast;
  a classification, so "stop" and "go" are not averaged into "creep").

Losses: L1 on the waypoints (masked by ``future_valid``), L1 on the path and a two-hot cross-entropy on the
target speed (both masked by ``plan_valid``; labels: the expert's own plan,
``data.targets.ExpertPlanTarget``).
A driver turns path and speed into waypoints with :meth:`PlanningHead.plan`.
"""

from __future__ import annotations

import itertools
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field, field_validator
from torch import nn

from riskdistill.contracts.agent import PLAN_DT_S, PLAN_HORIZON
from riskdistill.contracts.batch import Observation, Targets
from riskdistill.contracts.observation import EGO_STATE_FIELDS
from riskdistill.contracts.plan import waypoints_from_path_speeds
from riskdistill.geometry import BevGrid
from riskdistill.models.heads.base import Head, HeadConfig, register_head
from riskdistill.models.layers import mlp, sinusoidal_pos_2d

N_COMMANDS = 8  # Command values -1 (VOID), 1..6; embedded at index value + 1 (clamped to [0, 7])


class PlanningHeadConfig(HeadConfig):
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)
    ffn_dim: int = Field(default=128, ge=1)
    step_scale_m: float = Field(default=2.0, gt=0.0, description="displacement per step at unit output")
    ego_inputs: tuple[str, ...] = Field(default=EGO_STATE_FIELDS, min_length=0)
    ego_input_dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="training only: share of samples whose ego inputs are zeroed"
    )
    path_points: int = Field(default=0, ge=0, description="0: no path output")
    path_spacing_m: float = Field(default=1.0, gt=0.0)
    speed_bins_mps: tuple[float, ...] = Field(default=(), description="(): no target-speed output")
    waypoint_weight: float = Field(default=1.0, ge=0.0)
    waypoint_prior: Literal["none", "kinematic_arc"] = Field(
        default="none",
        description="kinematic_arc: the waypoints are a learned correction to that plan (the correction's "
        "output layer starts at zero, so an untrained head plans the arc)",
    )
    path_weight: float = Field(default=1.0, ge=0.0)
    speed_weight: float = Field(default=1.0, ge=0.0)

    @field_validator("ego_inputs")
    @classmethod
    def _ego_inputs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [x for x in v if x not in EGO_STATE_FIELDS]
        if unknown:
            raise ValueError(f"unknown ego input(s) {unknown}; valid: {list(EGO_STATE_FIELDS)}")
        return v

    @field_validator("speed_bins_mps")
    @classmethod
    def _bins(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if v and (len(v) < 2 or any(b <= a for a, b in itertools.pairwise(v)) or v[0] != 0.0):
            raise ValueError(f"speed_bins_mps must start at 0 and increase (at least 2 bins), got {v}")
        return v


class _DecoderLayer(nn.Module):
    def __init__(self, channels: int, n_heads: int, ffn_dim: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(channels, n_heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(channels, n_heads, batch_first=True)
        self.ffn = mlp(channels, ffn_dim, channels)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(channels) for _ in range(3))

    def forward(self, q: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor) -> torch.Tensor:
        q = self.norm1(q + self.self_attn(q, q, q, need_weights=False)[0])
        q = self.norm2(q + self.cross_attn(q, memory + memory_pos, memory, need_weights=False)[0])
        return self.norm3(q + self.ffn(q))


EGO_SCALE = {"speed_mps": 0.1, "accel_mps2": 0.2, "yaw_rate_radps": 1.0, "steer": 1.0}


def kinematic_arc(ego_state: torch.Tensor, target_point: torch.Tensor, n: int = PLAN_HORIZON) -> torch.Tensor:
    """``[B, n, 2]`` waypoints every ``PLAN_DT_S`` along the circular arc through the origin, tangent to the
    heading, that passes through the target point, at the current speed and acceleration (``ego_state``
    columns 0 and 1), never reversing: a plan that needs no learning (also the open-loop baseline of
    ``evaluation.open_loop.compute_baseline_plans``)."""
    v, a = ego_state[:, 0:1], ego_state[:, 1:2]
    t = torch.arange(1, n + 1, dtype=ego_state.dtype, device=ego_state.device)[None] * PLAN_DT_S  # [1, n]
    stop_t = torch.where(a < 0, -v / a.clamp(max=-1e-9), torch.full_like(v, float("inf")))
    te = torch.minimum(t, stop_t)
    dist = (v * te + 0.5 * a * te**2).clamp(min=0.0)  # [B, n]
    return arc_at_distance(target_point, dist)


def arc_at_distance(target_point: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """``[B, n, 2]`` points ``dist`` ``[B, n]`` metres along the circular arc through the origin, tangent to
    the heading, that passes through ``target_point`` ``[B, 2]`` (a straight line when it lies ahead)."""
    k = 2.0 * target_point[:, 1:2] / (target_point**2).sum(-1, keepdim=True).clamp(min=1e-6)
    small = k.abs() < 1e-6
    ks = torch.where(small, torch.ones_like(k), k)
    x = torch.where(small, dist, torch.sin(ks * dist) / ks)
    y = torch.where(small, torch.zeros_like(dist), (1.0 - torch.cos(ks * dist)) / ks)
    return torch.stack([x, y], dim=-1)


def two_hot(values: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """``[B]`` values -> ``[B, K]`` soft labels on increasing ``bins`` (linear between the two neighbours;
    clamped to the first / last bin)."""
    v = values.clamp(float(bins[0]), float(bins[-1]))
    hi = torch.searchsorted(bins, v.contiguous(), right=False).clamp(1, len(bins) - 1)
    lo = hi - 1
    w_hi = ((v - bins[lo]) / (bins[hi] - bins[lo])).clamp(0.0, 1.0)
    out = torch.zeros(len(v), len(bins), dtype=v.dtype, device=v.device)
    out.scatter_(1, lo[:, None], (1.0 - w_hi)[:, None])
    out.scatter_add_(1, hi[:, None], w_hi[:, None])
    return out


def speed_from_logits(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """``[B, K]`` -> ``[B]`` target speed: 0 when "stop" (the first bin) has probability >= 0.5, else the
    expected speed over the moving bins (a likely stop is never averaged into a creep)."""
    p = logits.float().softmax(-1)
    moving = p[:, 1:] / p[:, 1:].sum(-1, keepdim=True).clamp(min=1e-9)
    v = (moving * bins[1:].float()).sum(-1)
    return torch.where(p[:, 0] >= 0.5, torch.zeros_like(v), v)


@register_head
class PlanningHead(Head):
    name: ClassVar[str] = "planning"
    config_cls: ClassVar[type[HeadConfig]] = PlanningHeadConfig
    target_names: ClassVar[tuple[str, ...]] = ("future_trajectory", "expert_plan")
    target_fields: ClassVar[tuple[str, ...]] = ("future_waypoints", "future_valid")
    output_keys: ClassVar[tuple[str, ...]] = ("waypoints",)

    def __init__(self, cfg: PlanningHeadConfig, bev_channels: int, bev_hw: tuple[int, int], grid: BevGrid):
        super().__init__()
        c = bev_channels
        self.cfg = cfg
        self.step_scale_m = cfg.step_scale_m
        self.ego_index = [EGO_STATE_FIELDS.index(x) for x in cfg.ego_inputs]
        self.register_buffer(
            "ego_scale",
            torch.tensor([EGO_SCALE[x] for x in cfg.ego_inputs], dtype=torch.float32),
            persistent=False,
        )
        self.command_embed = nn.Embedding(N_COMMANDS, c)
        self.ego_encoder = mlp(
            len(self.ego_index) + 2, c, c
        )  # the chosen ego_state columns + target point [2]
        self.step_embed = nn.Parameter(torch.randn(PLAN_HORIZON, c) * 0.02)
        self.layers = nn.ModuleList(_DecoderLayer(c, cfg.n_heads, cfg.ffn_dim) for _ in range(cfg.n_layers))
        self.out = nn.Linear(c, 2)
        if cfg.waypoint_prior == "kinematic_arc":  # an untrained head plans the arc itself, not arc + noise
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        self.register_buffer("bev_pos", sinusoidal_pos_2d(bev_hw, c), persistent=False)  # [Hb * Wb, C]
        self.path_embed = nn.Parameter(torch.randn(cfg.path_points, c) * 0.02) if cfg.path_points else None
        self.path_out = nn.Linear(c, 2) if cfg.path_points else None
        k = len(cfg.speed_bins_mps)
        self.speed_embed = nn.Parameter(torch.randn(1, c) * 0.02) if k else None
        self.speed_out = nn.Linear(c, k) if k else None
        self.register_buffer(
            "speed_bins", torch.tensor(cfg.speed_bins_mps or (0.0,), dtype=torch.float32), persistent=False
        )

    @property
    def drives_with_path_speed(self) -> bool:
        return self.path_out is not None and self.speed_out is not None

    def forward(self, bev: torch.Tensor, obs: Observation) -> dict[str, torch.Tensor]:
        b = bev.shape[0]
        # normalised driver inputs: the chosen ego_state columns scaled by EGO_SCALE; target point / 20
        ego = obs.ego_state.float()[:, self.ego_index] * self.ego_scale
        if self.training and self.cfg.ego_input_dropout > 0:  # the inertia problem: decide from the scene
            keep = torch.rand(b, 1, device=ego.device) >= self.cfg.ego_input_dropout
            ego = ego * keep.to(ego.dtype)
        tp = (obs.target_point.float() / 20.0).clamp(-3.0, 3.0)
        cmd = (obs.command.long() + 1).clamp(0, N_COMMANDS - 1)
        ego_q = self.command_embed(cmd) + self.ego_encoder(torch.cat([ego, tp], dim=-1))  # [B, C]
        embeds = [self.step_embed] + [e for e in (self.path_embed, self.speed_embed) if e is not None]
        q = ego_q[:, None, :] + torch.cat(embeds)[None]  # [B, 6 (+ P) (+ 1), C]
        memory = bev.flatten(2).transpose(1, 2)  # [B, C, Hb, Wb] -> [B, Hb * Wb, C]
        pos = self.bev_pos[None].expand(b, -1, -1)
        for layer in self.layers:
            q = layer(q, memory, pos)
        steps = self.out(q[:, :PLAN_HORIZON]) * self.step_scale_m  # [B, 6, 2] displacement per 0.5 s
        waypoints = torch.cumsum(steps, dim=1)
        if self.cfg.waypoint_prior == "kinematic_arc":  # learn a correction to the physics prior
            waypoints = waypoints + kinematic_arc(obs.ego_state.float(), obs.target_point.float())
        out = {"waypoints": waypoints}
        k = PLAN_HORIZON
        if self.path_out is not None:
            p = self.cfg.path_points
            out["path"] = torch.cumsum(self.path_out(q[:, k : k + p]) * self.cfg.path_spacing_m, dim=1)
            k += p
        if self.speed_out is not None:
            out["speed_logits"] = self.speed_out(q[:, k])  # [B, K]
        return out

    def plan(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The waypoints ``[B, 6, 2]`` a driver hands the controller: from path and speed when this head
        predicts them (:func:`riskdistill.contracts.plan.waypoints_from_path_speed`), else its waypoints."""
        if not self.drives_with_path_speed:
            return outputs["waypoints"]
        speed = speed_from_logits(outputs["speed_logits"].detach(), self.speed_bins).cpu().numpy()
        path = outputs["path"].detach().float().cpu().numpy()
        wp = waypoints_from_path_speeds(path, speed)
        return torch.from_numpy(wp.astype(np.float32)).to(outputs["path"].device)

    def loss(
        self, outputs: dict[str, torch.Tensor], targets: Targets, step: int | None = None
    ) -> torch.Tensor:
        self.require(outputs, targets)
        cfg = self.cfg
        err = (outputs["waypoints"] - targets.future_waypoints).abs().sum(-1)  # [B, 6]
        valid = targets.future_valid.to(err.dtype)
        loss = cfg.waypoint_weight * (err * valid).sum() / (2.0 * valid.sum()).clamp(min=1.0)
        plan_valid = self._plan_valid(targets, err.dtype)
        if plan_valid is None:
            return loss
        n = plan_valid.sum().clamp(min=1.0)
        if "path" in outputs:
            p_err = (outputs["path"] - targets.plan_path).abs().sum(-1).mean(-1)  # [B]
            loss = loss + cfg.path_weight * (p_err * plan_valid).sum() / (2.0 * n)
        if "speed_logits" in outputs:
            soft = two_hot(targets.plan_speed_mps.reshape(-1).float(), self.speed_bins)
            ce = -(soft * F.log_softmax(outputs["speed_logits"].float(), dim=-1)).sum(-1)  # [B]
            loss = loss + cfg.speed_weight * (ce * plan_valid).sum() / n
        return loss

    @staticmethod
    def _plan_valid(targets: Targets, dtype: torch.dtype) -> torch.Tensor | None:
        if targets.plan_valid is None or targets.plan_path is None or targets.plan_speed_mps is None:
            return None
        return targets.plan_valid.reshape(-1).to(dtype)

    @torch.no_grad()
    def metrics(self, outputs: dict[str, torch.Tensor], targets: Targets) -> dict[str, float]:
        self.require(outputs, targets)
        diff = outputs["waypoints"] - targets.future_waypoints
        valid = targets.future_valid.to(diff.dtype)
        n = valid.sum().clamp(min=1.0)
        l1 = (diff.abs().sum(-1) * valid).sum() / (2.0 * n)
        l2 = (diff.norm(dim=-1) * valid).sum() / n
        out = {"planning_l1_m": float(l1), "planning_l2_m": float(l2)}
        plan_valid = self._plan_valid(targets, diff.dtype)
        if plan_valid is not None and float(plan_valid.sum()) > 0:
            m = plan_valid.sum()
            if "path" in outputs:
                p_err = (outputs["path"] - targets.plan_path).norm(dim=-1).mean(-1)
                out["path_l2_m"] = float((p_err * plan_valid).sum() / m)
            if "speed_logits" in outputs:
                v = speed_from_logits(outputs["speed_logits"], self.speed_bins)
                v_true = targets.plan_speed_mps.reshape(-1)
                out["speed_mae_mps"] = float(((v - v_true).abs() * plan_valid).sum() / m)
                stop_pred, stop_true = v < 0.5, v_true < 0.5
                out["stop_accuracy"] = float(((stop_pred == stop_true).float() * plan_valid).sum() / m)
        return out
