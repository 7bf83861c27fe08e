"""Attach the RiskHead to any BEV model through a forward hook on a named submodule.

    adapter = attach_risk_head(my_model, "bev_encoder", RiskHeadConfig(), grid, in_channels=256)
    out, risk = adapter(*inputs)               # runs my_model; risk [B, 1, H, W] from the hooked features
    loss = task_loss(out) + adapter.loss(risk, risk_target)
    optimizer = torch.optim.AdamW(adapter.parameters())   # my_model's parameters and the head's

Shape contract of the hooked module's output (the first element if it returns a tuple or list):

- ``layout="bchw"`` (default): ``[B, C, Hb, Wb]``, row 0 = front, column 0 = left, covering ``grid``;
- ``layout="tokens"``: ``[B, Hb * Wb, C]`` flattened row-major (BEVFormer/VAD BEV queries), re-batched
  into ``[B, C, Hb, Wb]`` with the given ``bev_hw`` ("BEV re-batching").

The risk map is predicted on ``grid.shape``. Gradients of the risk loss flow through the hooked features
into the user's model. ``adapter.remove()`` detaches the hook.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from riskdistill.geometry import BevGrid
from riskdistill.models.heads.risk import (
    RiskHeadConfig,
    RiskHeadModule,
    compute_risk_loss,
    compute_risk_metrics,
)


class RiskHeadAdapter(nn.Module):
    """Owns the user's model (``.model``) and a RiskHead (``.head``); see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        module_name: str,
        cfg: RiskHeadConfig,
        grid: BevGrid,
        in_channels: int,
        layout: Literal["bchw", "tokens"] = "bchw",
        bev_hw: tuple[int, int] | None = None,
    ):
        super().__init__()
        if layout not in ("bchw", "tokens"):
            raise ValueError(f"layout must be 'bchw' or 'tokens', got {layout!r}")
        if layout == "tokens" and bev_hw is None:
            raise ValueError("layout='tokens' needs bev_hw=(H, W) to re-batch [B, H*W, C] into [B, C, H, W]")
        modules = dict(model.named_modules())
        if module_name not in modules:
            names = [n for n in modules if n][:30]
            raise ValueError(f"model has no submodule {module_name!r}; submodules: {names}")
        self.model = model
        self.module_name = module_name
        self.cfg = cfg
        self.grid = grid
        self.layout = layout
        self.bev_hw = None if bev_hw is None else (int(bev_hw[0]), int(bev_hw[1]))
        self.head = RiskHeadModule(in_channels, grid.shape, cfg)
        self._features: torch.Tensor | None = None
        self._handle = modules[module_name].register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        feats = output[0] if isinstance(output, (tuple, list)) else output
        if not isinstance(feats, torch.Tensor):
            raise TypeError(
                f"hooked module {self.module_name!r} returned {type(output).__name__}, not a tensor"
            )
        self._features = feats

    @property
    def features(self) -> torch.Tensor:
        """The last hooked BEV features as ``[B, C, Hb, Wb]``."""
        if self._features is None:
            raise RuntimeError(f"no features captured yet: run the model (hook on {self.module_name!r})")
        f = self._features
        if self.layout == "tokens":
            hb, wb = self.bev_hw
            if f.ndim != 3 or f.shape[1] != hb * wb:
                raise ValueError(f"layout='tokens' expects [B, {hb * wb}, C] features, got {tuple(f.shape)}")
            f = f.transpose(1, 2).reshape(f.shape[0], f.shape[2], hb, wb)  # [B, H*W, C] -> [B, C, H, W]
        elif f.ndim != 4:
            raise ValueError(f"layout='bchw' expects [B, C, H, W] features, got {tuple(f.shape)}")
        return f

    def risk(self) -> torch.Tensor:
        """Risk map ``[B, 1, H, W]`` in [0, 1] from the last hooked features."""
        return self.head(self.features)

    def forward(self, *args: Any, **kwargs: Any) -> tuple[Any, torch.Tensor]:
        """Run the wrapped model; returns ``(model_output, risk_map)``."""
        self._features = None
        out = self.model(*args, **kwargs)
        return out, self.risk()

    def loss(self, risk: torch.Tensor, target: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The configured risk loss (weighted by ``cfg.weight``)."""
        return self.cfg.weight * compute_risk_loss(risk, target, self.cfg.loss, step)

    def metrics(self, risk: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        return compute_risk_metrics(risk, target, self.cfg.loss.fg_threshold)

    def remove(self) -> None:
        """Detach the forward hook (the model is left as it was)."""
        self._handle.remove()


def attach_risk_head(
    model: nn.Module,
    module_name: str,
    risk_cfg: RiskHeadConfig | dict | None,
    grid: BevGrid,
    *,
    in_channels: int | None = None,
    layout: Literal["bchw", "tokens"] = "bchw",
    bev_hw: tuple[int, int] | None = None,
) -> RiskHeadAdapter:
    """Hook a RiskHead onto ``model``'s submodule ``module_name`` (a name from ``model.named_modules()``).

    ``in_channels`` (C of the hooked features) is read from the submodule when it ends in a layer that
    states its width (conv, linear, norm); otherwise pass it."""
    if in_channels is None:
        in_channels = _infer_channels(model, module_name)
    if risk_cfg is None:
        risk_cfg = RiskHeadConfig()
    elif isinstance(risk_cfg, dict):
        risk_cfg = RiskHeadConfig.from_dict(risk_cfg, source="attach_risk_head(risk_cfg)")
    return RiskHeadAdapter(model, module_name, risk_cfg, grid, in_channels, layout, bev_hw)


def _infer_channels(model: nn.Module, module_name: str) -> int:
    modules = dict(model.named_modules())
    if module_name not in modules:
        names = [n for n in modules if n][:30]
        raise ValueError(f"model has no submodule {module_name!r}; submodules: {names}")
    for m in reversed(list(modules[module_name].modules())):
        for attr in ("out_channels", "out_features", "num_features", "num_channels"):
            v = getattr(m, attr, None)
            if isinstance(v, int):
                return v
        if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1:
            return int(m.normalized_shape[0])
    raise ValueError(
        f"attach_risk_head: cannot tell the channel count of submodule {module_name!r}; pass in_channels="
    )
