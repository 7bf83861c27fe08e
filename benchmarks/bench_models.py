"""Student speed: tiny training throughput and CPU inference latency (with / without the RiskHead),
parameter counts of tiny and base, and base latency on a GPU when CUDA is available.

    python benchmarks/bench_models.py [--threads 2] [--batch 8] [--steps 6] [--iters 20] [--view deformable]

Synthetic observations on the bench2drive rig at the preset's image size (throughput does not depend on
the pixel values). Latency is the median of ``--iters`` batch-1 forward passes under ``inference_mode``.
RiskHead overhead = latency(with_risk=True) / latency(with_risk=False) - 1; "baseline" is a student built
without a RiskHead (what ``with_risk=False`` must match: zero cost).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from riskdistill.contracts.batch import Observation, Targets
from riskdistill.contracts.rig import load_rig, resize_rig
from riskdistill.models import build_student, count_parameters, student_config


def make_obs(b: int, hw: tuple[int, int], device: str = "cpu") -> Observation:
    rig = resize_rig(load_rig("bench2drive"), *hw)
    n = len(rig.cameras)
    return Observation(
        images=torch.randint(0, 256, (b, n, 3, *hw), dtype=torch.uint8),
        camera_valid=torch.ones(b, n, dtype=torch.bool),
        K=torch.tensor(rig.K(), dtype=torch.float32)[None].repeat(b, 1, 1, 1),
        T_ego_from_cam=torch.tensor(rig.T_ego_from_cam(), dtype=torch.float32)[None].repeat(b, 1, 1, 1),
        ego_state=torch.zeros(b, 4),
        command=torch.full((b,), 4),
        target_point=torch.tensor([[20.0, 0.0]]).repeat(b, 1),
    ).to(device)


def make_targets(b: int, grid_hw: tuple[int, int]) -> Targets:
    return Targets(
        future_waypoints=torch.cumsum(torch.rand(b, 6, 2), 1),
        future_valid=torch.ones(b, 6, dtype=torch.bool),
        bev_occupancy=(torch.rand(b, 5, *grid_hw) > 0.9).float(),
        risk_map=torch.rand(b, 1, *grid_hw) * (torch.rand(b, 1, *grid_hw) > 0.97),
    )


def latency_s(student, obs: Observation, iters: int, with_risk: bool, cuda: bool = False) -> float:
    times = []
    with torch.inference_mode():
        for i in range(iters + 3):
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            student(obs, with_risk=with_risk)
            if cuda:
                torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--view", default="deformable", choices=["deformable", "lss"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows: list[tuple[str, str]] = []

    cfg = student_config("tiny", view={"type": args.view})
    hw, grid_hw = tuple(cfg.image_hw), cfg.bev_grid().shape
    student = build_student(cfg)
    obs, tg = make_obs(args.batch, hw), make_targets(args.batch, grid_hw)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    times = []
    for i in range(args.steps + 2):
        t = time.perf_counter()
        loss = student.losses(student(obs), tg)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    rows.append((f"tiny train step (batch {args.batch}, {args.threads} threads)", f"{step * 1e3:.0f} ms"))
    rows.append(("tiny training throughput", f"{args.batch / step:.1f} samples/s"))

    student.eval()
    one = make_obs(1, hw)
    on = latency_s(student, one, args.iters, True)
    off = latency_s(student, one, args.iters, False)
    base_cfg = student_config("tiny", view={"type": args.view}, heads={"risk": {"enabled": False}})
    baseline = build_student(base_cfg).eval()
    base_lat = latency_s(baseline, one, args.iters, False)
    rows.append(("tiny batch-1 latency, RiskHead on", f"{on * 1e3:.1f} ms"))
    rows.append(("tiny batch-1 latency, with_risk=False", f"{off * 1e3:.1f} ms"))
    rows.append(("tiny batch-1 latency, no RiskHead built", f"{base_lat * 1e3:.1f} ms"))
    rows.append(("RiskHead overhead at inference", f"{(on / off - 1) * 100:+.1f} %"))
    rows.append(("tiny parameters", f"{count_parameters(student) / 1e6:.2f} M"))
    rows.append(("tiny RiskHead parameters", f"{count_parameters(student.heads['risk']) / 1e6:.3f} M"))

    base = build_student(student_config("base", view={"type": args.view}))
    rows.append(("base parameters", f"{count_parameters(base) / 1e6:.2f} M"))
    for name, mod in base.named_children():
        rows.append((f"  base {name}", f"{count_parameters(mod) / 1e6:.2f} M"))
    if torch.cuda.is_available():
        dev = "cuda"
        base = base.to(dev).eval()
        bobs = make_obs(1, tuple(base.cfg.image_hw), dev)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            b_on = latency_s(base, bobs, args.iters, True, cuda=True)
            b_off = latency_s(base, bobs, args.iters, False, cuda=True)
        gpu = torch.cuda.get_device_name()
        rows.append((f"base batch-1 latency on {gpu} (bf16), RiskHead on", f"{b_on * 1e3:.1f} ms"))
        rows.append((f"base batch-1 latency on {gpu} (bf16), with_risk=False", f"{b_off * 1e3:.1f} ms"))
        rows.append(("base FPS (RiskHead on)", f"{1.0 / b_on:.1f}"))
    else:
        rows.append(("base GPU latency", "skipped (no CUDA)"))

    table = Table(title=f"riskdistill.models ({args.view} view transform)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for r in rows:
        table.add_row(*r)
    Console().print(table)


if __name__ == "__main__":
    main()
