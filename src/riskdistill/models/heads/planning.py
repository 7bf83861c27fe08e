"""Planning head: an ego query attends to the BEV features and decodes 6 waypoints at 0.5 s.

The ego query is built from the route command (embedding), the target point and the ego state; six
waypoint queries (ego query + a learned per-step embedding) go through ``n_layers`` decoder layers
(self-attention among the waypoint queries, cross-attention to the BEV tokens with fixed 2-D position
codes, feed-forward). Each query predicts a displacement; the plan is their cumulative sum.

Loss: L1 between the predicted and the expert's waypoints, masked by ``future_valid``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from riskdistill.contracts.agent import PLAN_HORIZON
from riskdistill.contracts.batch import Observation, Targets
from riskdistill.geometry import BevGrid
from riskdistill.models.heads.base import Head, HeadConfig, register_head
from riskdistill.models.layers import mlp, sinusoidal_pos_2d

N_COMMANDS = 8  # Command values -1 (VOID), 1..6; embedded at index value + 1 (clamped to [0, 7])


class PlanningHeadConfig(HeadConfig):
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)
    ffn_dim: int = Field(default=128, ge=1)
    step_scale_m: float = Field(default=2.0, gt=0.0, description="displacement per step at unit output")


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


@register_head
class PlanningHead(Head):
    name: ClassVar[str] = "planning"
    config_cls: ClassVar[type[HeadConfig]] = PlanningHeadConfig
    target_names: ClassVar[tuple[str, ...]] = ("future_trajectory",)
    target_fields: ClassVar[tuple[str, ...]] = ("future_waypoints", "future_valid")
    output_keys: ClassVar[tuple[str, ...]] = ("waypoints",)

    def __init__(self, cfg: PlanningHeadConfig, bev_channels: int, bev_hw: tuple[int, int], grid: BevGrid):
        super().__init__()
        c = bev_channels
        self.step_scale_m = cfg.step_scale_m
        self.command_embed = nn.Embedding(N_COMMANDS, c)
        self.ego_encoder = mlp(6, c, c)  # ego_state [4] + target point [2]
        self.step_embed = nn.Parameter(torch.randn(PLAN_HORIZON, c) * 0.02)
        self.layers = nn.ModuleList(_DecoderLayer(c, cfg.n_heads, cfg.ffn_dim) for _ in range(cfg.n_layers))
        self.out = nn.Linear(c, 2)
        self.register_buffer("bev_pos", sinusoidal_pos_2d(bev_hw, c), persistent=False)  # [Hb * Wb, C]

    def forward(self, bev: torch.Tensor, obs: Observation) -> dict[str, torch.Tensor]:
        b = bev.shape[0]
        # normalised driver inputs: speed / 10, accel / 5, yaw rate, steer; target point / 20 clamped
        ego = obs.ego_state.float() * torch.tensor([0.1, 0.2, 1.0, 1.0], device=bev.device)
        tp = (obs.target_point.float() / 20.0).clamp(-3.0, 3.0)
        cmd = (obs.command.long() + 1).clamp(0, N_COMMANDS - 1)
        ego_q = self.command_embed(cmd) + self.ego_encoder(torch.cat([ego, tp], dim=-1))  # [B, C]
        q = ego_q[:, None, :] + self.step_embed[None]  # [B, 6, C]
        memory = bev.flatten(2).transpose(1, 2)  # [B, C, Hb, Wb] -> [B, Hb * Wb, C]
        pos = self.bev_pos[None].expand(b, -1, -1)
        for layer in self.layers:
            q = layer(q, memory, pos)
        steps = self.out(q) * self.step_scale_m  # [B, 6, 2] displacement per 0.5 s
        return {"waypoints": torch.cumsum(steps, dim=1)}

    def loss(
        self, outputs: dict[str, torch.Tensor], targets: Targets, step: int | None = None
    ) -> torch.Tensor:
        self.require(outputs, targets)
        err = (outputs["waypoints"] - targets.future_waypoints).abs().sum(-1)  # [B, 6]
        valid = targets.future_valid.to(err.dtype)
        return (err * valid).sum() / (2.0 * valid.sum()).clamp(min=1.0)

    @torch.no_grad()
    def metrics(self, outputs: dict[str, torch.Tensor], targets: Targets) -> dict[str, float]:
        self.require(outputs, targets)
        diff = outputs["waypoints"] - targets.future_waypoints
        valid = targets.future_valid.to(diff.dtype)
        n = valid.sum().clamp(min=1.0)
        l1 = (diff.abs().sum(-1) * valid).sum() / (2.0 * n)
        l2 = (diff.norm(dim=-1) * valid).sum() / n
        return {"planning_l1_m": float(l1), "planning_l2_m": float(l2)}
