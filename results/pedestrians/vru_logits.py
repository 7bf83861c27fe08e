"""The occupancy head's vulnerable-road-user logit on three kinds of cells, for several students, on the first
N frames (every 7th) of DATA that hold a pedestrian or cyclist on the drivable area: cells of pedestrians on
the road, of pedestrians beside it, and empty road. Shows whether a fine-tune separated the pedestrians on
the road from the road around them or only moved every road cell.

    python results/pedestrians/vru_logits.py DATA N CHECKPOINT... [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from riskdistill.contracts.batch import BEV_CHANNELS
from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
from riskdistill.models import load_student

VRU, ROAD = BEV_CHANNELS.index("vulnerable"), BEV_CHANNELS.index("drivable")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("n_frames", type=int)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    students = [load_student(c).eval() for c in args.checkpoints]
    cfg = students[0].cfg
    ds = DrivingDataset(
        args.data, cfg.bev_grid(), ["bev_occupancy"], cameras=cfg.cameras,
        image_hw=tuple(cfg.image_hw), image_dtype="uint8",
    )  # fmt: skip
    pick = []
    for i in range(0, len(ds), 7):
        t = ds[i].targets.bev_occupancy
        if ((t[VRU] > 0.5) & (t[ROAD] > 0.5)).any():
            pick.append(i)
        if len(pick) >= args.n_frames:
            break
    logits: dict[str, dict[str, list[torch.Tensor]]] = {c: {} for c in args.checkpoints}
    with torch.no_grad():
        for k in range(0, len(pick), 8):
            batch = collate_batch([ds[i] for i in pick[k : k + 8]])
            t = batch.targets.bev_occupancy
            vru, road = t[:, VRU] > 0.5, t[:, ROAD] > 0.5
            cells = {"vru_on_road": vru & road, "vru_beside": vru & ~road, "empty_road": ~vru & road}
            for c, student in zip(args.checkpoints, students, strict=True):
                out = student(batch.observation)["occupancy"][:, VRU]
                for name, mask in cells.items():
                    logits[c].setdefault(name, []).append(out[mask])
    result = {"data": str(args.data), "frames": len(pick), "students": {}}
    for c in args.checkpoints:
        row = {}
        for name, parts in logits[c].items():
            v = torch.cat(parts)
            marked = float((v > 0).float().mean())
            row[name] = {"cells": len(v), "mean_logit": float(v.mean()), "share_marked": marked}
        result["students"][c] = row
        print(c, "  ".join(f"{n}: {r['mean_logit']:+.1f} ({r['share_marked']:.1%})" for n, r in row.items()))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
