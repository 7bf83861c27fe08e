"""Attach the RiskHead to your own BEV model and train it with a risk loss, in about 30 lines.

    python examples/attach_riskhead.py [--steps 30]

``ToyBevPlanner`` below stands for any user model: it is defined here, knows nothing about riskdistill, and
produces BEV features in a submodule (``bev_encoder``, output ``[B, C, H, W]``). ``attach_risk_head`` hooks
a RiskHead onto that submodule; the risk loss then shapes the model's own BEV features (RSD's
distillation), next to the model's planning loss. The targets here are synthetic: a risky blob in front of
the ego whose position is encoded in the image (a bright column), so the hooked BEV features must carry it.
With real data, the targets come from ``riskdistill.data.targets.RiskMapTarget`` (the teacher's maps).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from riskdistill.geometry import BevGrid
from riskdistill.models import RiskHeadConfig, attach_risk_head


class ToyBevPlanner(nn.Module):
    """A user's model: image [B, 3, 64, 64] -> BEV features [B, 32, 16, 16] -> 6 waypoints."""

    def __init__(self) -> None:
        super().__init__()
        self.image_encoder = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2, padding=1)
        )
        self.bev_encoder = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())  # [B, 32, 16, 16]
        self.planner = nn.Sequential(nn.Flatten(), nn.Linear(32 * 16 * 16, 12))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        bev = self.bev_encoder(self.image_encoder(image))
        return self.planner(bev).view(-1, 6, 2)


def synthetic_batch(b: int, grid: BevGrid, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Images with a bright column at a random position, the risk blob in the matching BEV column."""
    h, w = grid.shape
    col = torch.randint(4, w - 4, (b,), generator=g)
    image = torch.rand(b, 3, 64, 64, generator=g) * 0.2
    risk = torch.zeros(b, 1, h, w)
    for i, c in enumerate(col.tolist()):
        image[i, :, :, c * 64 // w : c * 64 // w + 4] = 1.0
        risk[i, 0, 4:10, c - 2 : c + 2] = 0.9
    waypoints = torch.cumsum(torch.full((b, 6, 2), 0.0) + torch.tensor([2.0, 0.0]), dim=1)
    return image, risk, waypoints


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    grid = BevGrid.centered(32.0, 32.0, 1.0, x_offset_m=8.0)  # 32 x 32 cells of 1 m

    model = ToyBevPlanner()
    adapter = attach_risk_head(model, "bev_encoder", RiskHeadConfig(channels=16), grid, in_channels=32)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=3e-3)  # the model's and the head's parameters
    g = torch.Generator().manual_seed(0)
    for step in range(args.steps):
        image, risk_target, wp_target = synthetic_batch(8, grid, g)
        plan, risk = adapter(image)  # runs the model; the hook feeds its BEV features to the RiskHead
        plan_loss = (plan - wp_target).abs().mean()
        risk_loss = adapter.loss(risk, risk_target, step=step)
        optimizer.zero_grad()
        (plan_loss + risk_loss).backward()
        optimizer.step()
        if step % 5 == 0 or step == args.steps - 1:
            m = adapter.metrics(risk.detach(), risk_target)
            print(
                f"step {step:3d}  planning L1 {plan_loss.item():.3f}  risk loss {risk_loss.item():.4f}  "
                f"risk L1 (foreground) {m.get('risk_l1_fg', float('nan')):.3f}"
            )
    adapter.remove()  # the model is unchanged and runs without the head again
    print("BEV model output after detaching:", tuple(model(image).shape))


if __name__ == "__main__":
    main()
