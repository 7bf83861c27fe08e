"""Why does the student not pass a blocked lane? Perception or planning, on the expert's own frames.

On a recorded data set (the bench recording of the study's seed 0), for every frame of the seven scenario
types that need the ego to leave its lane around a standing obstacle:
- *manoeuvre frames*: the expert's plan path (20 m ahead) leaves the kinematic arc towards the target point by
  >= 1.5 m, i.e. the expert is swerving around the obstacle. On them: how far the student's path leaves the
  same arc (mean of the largest offset; its mean towards the expert's side; the shares of frames where it
  leaves by >= 1.0 m to the expert's side and to the other), and how often the student and the expert plan
  to stop; for scale, the same on the frames of the other types where the expert leaves the arc as much
  (every 4th frame);
- *perception*: recall of the ground-truth vehicle / static-obstacle cells in the ego lane ahead (x 0-30 m,
  |y| <= 2 m) by the student's BEV occupancy, on these frames and, for scale, on every 4th frame of the
  other types;
- *the occupancy brake* (``models.occupancy_brake``, the driver option ``--occupancy-brake``), offline on the
  same frames: does it fire on the student's own path and speed, and would it with the ground-truth
  occupancy in place of the student's (fires / needed, per group).
Usage: python results/overtaking/diagnose.py DATA LABEL=CHECKPOINT [...] [--out FILE.json] (adds to FILE.json)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from riskdistill.contracts.batch import BEV_CHANNELS
from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
from riskdistill.models import load_student
from riskdistill.models.heads.planning import arc_at_distance, speed_from_logits
from riskdistill.models.occupancy_brake import OccupancyBrake

OVERTAKING = ("Accident", "AccidentTwoWays", "ConstructionObstacle", "ConstructionObstacleTwoWays",
              "ParkedObstacle", "ParkedObstacleTwoWays", "VehicleOpensDoorTwoWays")  # fmt: skip
SWERVE_M, FOLLOW_M = 1.5, 1.0
LANE = (0.0, 30.0, 2.0)  # x from, x to, |y| up to (m): the ego lane ahead
OTHER_STRIDE = 4  # every 4th frame of the other scenario types (for the perception comparison)


def signed_offset(path: np.ndarray, arc: np.ndarray) -> np.ndarray:
    """``[B]`` the largest offset of ``path`` from ``arc`` (point by point), with its lateral sign."""
    d = path - arc
    i = np.abs(d[..., 1]).argmax(-1)
    return np.take_along_axis(d[..., 1], i[:, None], -1)[:, 0]


def diagnose(data: Path, checkpoint: Path) -> dict:
    student = load_student(checkpoint, map_location="cpu").eval()
    cfg = student.cfg
    grid = cfg.bev_grid()
    ds = DrivingDataset(data, grid, ["expert_plan", "bev_occupancy"], cameras=cfg.cameras,
                        image_hw=tuple(cfg.image_hw), image_dtype="uint8")  # fmt: skip
    scen = ds.scenarios
    centers = grid.cell_centers()  # [H, W, 2] metric x, y
    lane = (centers[..., 0] >= LANE[0]) & (centers[..., 0] <= LANE[1]) & (np.abs(centers[..., 1]) <= LANE[2])
    ch = [BEV_CHANNELS.index("vehicle"), BEV_CHANNELS.index("static_obstacle")]
    acc = {
        "ot_frames": 0,
        "manoeuvre": [],
        "other_manoeuvre": [],
        "lane_hits": {"overtaking": [0, 0], "other": [0, 0]},
        "brake": {"overtaking": np.zeros((2, 2), int), "other": np.zeros((2, 2), int)},  # [needed, fires]
    }
    brake = OccupancyBrake()
    picked = [i for i, name in enumerate(scen) if name in OVERTAKING or i % OTHER_STRIDE == 0]
    scen = [scen[i] for i in picked]
    loader = DataLoader(Subset(ds, picked), batch_size=16, collate_fn=collate_batch)
    head = student.heads["planning"]
    i0 = 0
    with torch.no_grad():
        for batch in loader:
            n = len(batch)
            names = scen[i0 : i0 + n]
            i0 += n
            out = student(batch.observation, with_risk=False)
            tg = batch.targets
            occ_p = out["occupancy"].float().sigmoid().numpy()[:, ch].max(1) > 0.5  # [B, H, W]
            occ_t = tg.bev_occupancy.numpy()[:, ch].max(1) >= 0.5
            gt_logits = np.where(tg.bev_occupancy.numpy() >= 0.5, 10.0, -10.0)
            occ_logits, paths = out["occupancy"].float().numpy(), out["path"].float().numpy()
            speeds = batch.observation.ego_state.numpy()[:, 0]
            for b, name in enumerate(names):
                key = "overtaking" if name in OVERTAKING else "other"
                t = occ_t[b] & lane
                acc["lane_hits"][key][0] += int((occ_p[b] & t).sum())
                acc["lane_hits"][key][1] += int(t.sum())
                fires = brake.triggered(occ_logits[b], grid, paths[b], float(speeds[b]))
                needed = brake.triggered(gt_logits[b], grid, paths[b], float(speeds[b]))
                acc["brake"][key][int(needed), int(fires)] += 1
            ot = np.array([s in OVERTAKING for s in names])
            acc["ot_frames"] += int(ot.sum())
            sel = tg.plan_valid.numpy().reshape(-1) > 0.5
            if not sel.any():
                continue
            tp = batch.observation.target_point.numpy()[sel]
            exp_path = tg.plan_path.numpy()[sel]
            s = np.arange(1, exp_path.shape[1] + 1, dtype=np.float32) * head.cfg.path_spacing_m
            arc = arc_at_distance(torch.from_numpy(tp), torch.from_numpy(s)[None].expand(len(tp), -1)).numpy()
            e_off = signed_offset(exp_path, arc)
            s_off = signed_offset(out["path"].float().numpy()[sel], arc)
            st_stop = speed_from_logits(out["speed_logits"][sel], head.speed_bins).numpy() == 0.0
            e_stop = tg.plan_speed_mps.numpy().reshape(-1)[sel] < 0.1
            for k in np.nonzero(np.abs(e_off) >= SWERVE_M)[0]:
                row = (float(e_off[k]), float(s_off[k]), bool(st_stop[k]), bool(e_stop[k]))
                acc["manoeuvre" if ot[sel][k] else "other_manoeuvre"].append(row)
    m = np.array(acc["manoeuvre"], dtype=np.float64).reshape(-1, 4)
    toward = m[:, 1] * np.sign(m[:, 0])  # the student's offset, positive towards the expert's side
    same_side = toward >= FOLLOW_M
    o = np.array(acc["other_manoeuvre"], dtype=np.float64).reshape(-1, 4)
    o_toward = o[:, 1] * np.sign(o[:, 0])
    recall = {k: (h / t if t else None) for k, (h, t) in acc["lane_hits"].items()}
    return {
        "checkpoint": str(checkpoint),
        "overtaking_frames": acc["ot_frames"],
        "manoeuvre_frames": len(m),
        "expert_offset_m_mean": float(np.abs(m[:, 0]).mean()) if len(m) else None,
        "student_offset_m_mean": float(np.abs(m[:, 1]).mean()) if len(m) else None,
        "student_offset_towards_expert_m_mean": float(toward.mean()) if len(m) else None,
        "student_swerves_same_side_pct": float(100 * same_side.mean()) if len(m) else None,
        "student_swerves_other_side_pct": float(100 * (toward <= -FOLLOW_M).mean()) if len(m) else None,
        "student_plans_stop_pct": float(100 * m[:, 2].mean()) if len(m) else None,
        "expert_plans_stop_pct": float(100 * m[:, 3].mean()) if len(m) else None,
        "other_types_for_scale": {  # the same measure where the expert leaves the arc on the other types
            "manoeuvre_frames": len(o),
            "student_swerves_same_side_pct": float(100 * (o_toward >= FOLLOW_M).mean()) if len(o) else None,
            "student_swerves_other_side_pct": float(100 * (o_toward <= -FOLLOW_M).mean()) if len(o) else None,
        },
        "lane_obstacle_recall": recall,
        "lane_obstacle_cells": {k: t for k, (_, t) in acc["lane_hits"].items()},
        "occupancy_brake": {k: _brake_rates(c) for k, c in acc["brake"].items()},
    }


def _brake_rates(c: np.ndarray) -> dict:
    """``c[needed, fires]`` frame counts -> how often the brake fires and is needed; precision, recall."""
    n = int(c.sum())
    return {
        "frames": n,
        "fires_pct": 100.0 * c[:, 1].sum() / n if n else None,
        "needed_pct": 100.0 * c[1].sum() / n if n else None,
        "precision_pct": 100.0 * c[1, 1] / c[:, 1].sum() if c[:, 1].sum() else None,
        "recall_pct": 100.0 * c[1, 1] / c[1].sum() if c[1].sum() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("students", nargs="+", help="LABEL=CHECKPOINT")
    ap.add_argument("--out", type=Path, help="JSON file; the students already in it are kept unless rerun")
    ap.add_argument("--only-new", action="store_true", help="skip the students already in --out")
    a = ap.parse_args()
    torch.set_num_threads(2)
    res = json.loads(a.out.read_text()) if a.out and a.out.is_file() else {}
    for item in a.students:
        label, _, ckpt = item.partition("=")
        if a.only_new and label in res:
            continue
        res[label] = diagnose(a.data, Path(ckpt))
        print(label, json.dumps(res[label], indent=1))
    if a.out:
        a.out.write_text(json.dumps(dict(sorted(res.items())), indent=1) + "\n")


if __name__ == "__main__":
    main()
