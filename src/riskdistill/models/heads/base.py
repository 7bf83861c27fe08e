"""What every head is: a config, a module, a loss and metrics, registered by name.

A head reads the shared BEV features ``[B, C, Hb, Wb]`` (and the driver-visible observation, e.g. the route
command for planning) and returns named outputs. Its loss reads only
:class:`~riskdistill.contracts.batch.Targets` fields that its ``target_names`` builders produce; a missing
target is a clear error.

Adding a head (see ``docs/howto.md``): copy ``heads/occupancy.py`` to ``heads/<name>.py`` with a
``<Name>HeadConfig(HeadConfig)`` and a ``Head`` subclass decorated with ``@register_head``, import it in
``heads/__init__.py``, and turn it on in a student config (``model.heads.<name>={}``). The student runs every
enabled head and adds its weighted loss.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from riskdistill.config import StrictConfig
from riskdistill.contracts.batch import Observation, Targets
from riskdistill.registry import Registry


class HeadConfig(StrictConfig):
    """Fields every head config has: ``enabled`` and the loss ``weight`` in ``Student.losses``."""

    enabled: bool = True
    weight: float = Field(default=1.0, ge=0.0)


class Head(nn.Module):
    """Base class of the plug-in heads. Subclasses set the class attributes and implement the methods.

    - ``name``: registry name (equals the file stem and the ``HeadsConfig`` field);
    - ``config_cls``: its ``HeadConfig`` subclass;
    - ``target_names``: ``data.targets`` builder names its loss needs;
    - ``target_fields``: the ``Targets`` fields those builders fill and the loss reads;
    - ``output_keys``: keys its ``forward`` adds to the student's outputs;
    - ``optional_at_inference``: the student may skip it at inference (``Student.forward(with_risk=False)``
      skips the RiskHead), so driving never depends on it;
    - ``reads``: ``"bev"`` (the shared BEV features ``[B, C, Hb, Wb]``) or ``"image"`` (the camera features
      ``[B, N, C, Hf, Wf]``, for image-space auxiliary supervision);
    - ``train_only``: it runs only while training (auxiliary supervision; no cost at inference).
    """

    name: ClassVar[str]
    config_cls: ClassVar[type[HeadConfig]]
    target_names: ClassVar[tuple[str, ...]]
    target_fields: ClassVar[tuple[str, ...]]
    output_keys: ClassVar[tuple[str, ...]]
    optional_at_inference: ClassVar[bool] = False
    reads: ClassVar[str] = "bev"
    train_only: ClassVar[bool] = False

    def forward(self, bev: torch.Tensor, obs: Observation) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(
        self, outputs: dict[str, torch.Tensor], targets: Targets, step: int | None = None
    ) -> torch.Tensor:
        """The unweighted scalar loss (the student multiplies by ``cfg.weight``)."""
        raise NotImplementedError

    def metrics(self, outputs: dict[str, torch.Tensor], targets: Targets) -> dict[str, float]:
        raise NotImplementedError

    def require(self, outputs: dict[str, torch.Tensor], targets: Targets) -> None:
        """Raise a clear error when an output or a target this head's loss needs is missing."""
        for k in self.output_keys:
            if k not in outputs:
                raise KeyError(
                    f"head {self.name!r}: output {k!r} is missing (forward ran with this head skipped, "
                    f"e.g. with_risk=False?); outputs have {sorted(outputs)}"
                )
        for f in self.target_fields:
            if getattr(targets, f, None) is None:
                raise ValueError(
                    f"head {self.name!r} needs Targets.{f}, which is None: build the data set with "
                    f"targets={list(self.target_names)} (data.targets builders)"
                )


HEADS: Registry[type[Head]] = Registry("head")
register_head = HEADS.register  # class decorator: @register_head makes a head available by its ``name``
get_head = HEADS.get  # a registered head class by name; an unknown name lists the valid ones
list_heads = HEADS.names
