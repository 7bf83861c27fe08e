"""Does a student put a pedestrian on the road where its camera ray meets the pavement? For every
camera-visible pedestrian and cyclist on the drivable area within 20 m in every STRIDE-th frame of a
recording: how far the road goes on behind it along the ray from the car (to the first cell the drivable
target does not hold), whether the occupancy head marks it (a VRU cell above 0.5 within 1.5 m of its
centre), and where the nearest mark within 6 m lies (on the road or off it, nearer or further out).

    python results/pedestrians/ray_edge.py CHECKPOINT DATA [--stride 16] [--out FILE.json]
"""

from __future__ import annotations

import math

import numpy as np
import torch
from student_frames import student_frames

from riskdistill.contracts.batch import BEV_CHANNELS
from riskdistill.data.targets import OCCUPANCY_CHANNEL_OF_CLASS

EDGE_BINS_M = ((0.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, math.inf))


def road_behind_m(road: np.ndarray, grid, xy: np.ndarray, step_m: float = 0.25) -> float:
    """Metres from ``xy`` outward along the ray from the ego origin to the first non-drivable cell
    (inf when the grid ends first)."""
    unit = xy / max(float(np.hypot(*xy)), 1e-6)
    for k in range(1, 400):
        p = xy + k * step_m * unit
        if not grid.contains(p[None])[0]:
            return math.inf
        r, c = grid.metric_to_cell(p[None])[0]
        if not road[r, c]:
            return k * step_m
    return math.inf


def main() -> None:
    f = student_frames(__doc__.split("\n\n")[0], ["bev_occupancy"])
    args, student, grid, index, cell_x, cell_y = f.args, f.student, f.grid, f.index, f.cell_x, f.cell_y
    rows = []  # (road behind m, marked, nearest mark within 6 m: off road, further out) ; None if no mark
    loader = f.loader
    vru_ch, road_ch = BEV_CHANNELS.index("vulnerable"), BEV_CHANNELS.index("drivable")
    with torch.no_grad():
        for batch in loader:
            occ = torch.sigmoid(student(batch.observation)["occupancy"][:, vru_ch]).numpy()
            roads = batch.targets.bev_occupancy[:, road_ch].numpy() > 0.5
            for k, fid in enumerate(batch.frame_ids):
                ann = index.get(index.by_frame_id[fid])[0]
                cls, centre = np.asarray(ann["actor_class"]), np.asarray(ann["actor_center_ego"])
                visible = np.asarray(ann["actor_visible_px"]).reshape(len(cls), -1).any(axis=1)
                marked, road = occ[k] > 0.5, roads[k]
                for a in np.flatnonzero(visible):
                    xy = centre[a, :2].astype(np.float64)
                    if OCCUPANCY_CHANNEL_OF_CLASS.get(int(cls[a]), -1) != 1 or np.hypot(*xy) >= 20.0:
                        continue
                    if not grid.contains(xy[None])[0]:
                        continue
                    r, c = grid.metric_to_cell(xy[None])[0]
                    if not road[r, c]:
                        continue
                    d = np.where(marked, np.hypot(cell_x - xy[0], cell_y - xy[1]), np.inf)
                    i, j = np.unravel_index(int(d.argmin()), d.shape)
                    mark = None
                    if d[i, j] <= 6.0:
                        further = math.hypot(cell_x[i, j], cell_y[i, j]) > math.hypot(*xy)
                        mark = (not bool(road[i, j]), bool(further))
                    rows.append((road_behind_m(road, grid, xy), bool(d[i, j] <= 1.5), mark))
    result = {"checkpoint": str(args.checkpoint), "data": str(args.data), "stride": args.stride, "bins": []}
    print(
        f"{'road behind it':<16}{'n':>6}{'marked':>9}{'a mark within 6 m':>19}{'of those: off the road':>24}"
    )
    for lo, hi in EDGE_BINS_M:
        sel = [row for row in rows if lo <= row[0] < hi]
        if not sel:
            continue
        marks = [row[2] for row in sel if row[2] is not None]
        off = float(np.mean([m[0] for m in marks])) if marks else None
        result["bins"].append(
            {
                "road_behind_m": [lo, hi],
                "objects": len(sel),
                "marked_within_1_5m": float(np.mean([row[1] for row in sel])),
                "mark_within_6m": len(marks) / len(sel),
                "of_those_off_road": off,
                "of_those_further_out": float(np.mean([m[1] for m in marks])) if marks else None,
            }
        )
        b = result["bins"][-1]
        off_s = "-" if off is None else f"{off:.0%}"
        print(
            f"{f'{lo:g}-{hi:g} m':<16}{len(sel):>6}{b['marked_within_1_5m']:>9.0%}"
            f"{b['mark_within_6m']:>19.0%}{off_s:>24}"
        )
    f.write(result)


if __name__ == "__main__":
    main()
