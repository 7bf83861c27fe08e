"""Where do a student's pedestrians on the road go? For every camera-visible pedestrian and cyclist of every
STRIDE-th frame of a recording, split by whether it stands on the drivable area (as `eval open-loop`'s
`occupancy_recall_on_road`):

- image head: does the student's image-space semantics head (training only; run here on the frozen
  network) give the vulnerable-road-user class p > 0.5 somewhere on the pixels the renderer labels as
  vulnerable road user, in the camera that shows the object most? (Are the pedestrians in the image
  features at all?)
- BEV: the distance from the object's centre to the nearest cell the occupancy head marks as vulnerable
  (p > 0.5), and, for marks 1.5-5 m away, whether the mark lies further from the car than the object along
  about the same bearing (the pedestrian put on the pavement behind it).

    python results/pedestrians/diagnose_on_road.py CHECKPOINT DATA [--stride 16] [--out FILE.json]

Prints a table and writes the counts as JSON. Used by results/pedestrians/run.sh (step `diagnose`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from student_frames import student_frames

from riskdistill.contracts.batch import BEV_CHANNELS
from riskdistill.data.targets import OCCUPANCY_CHANNEL_OF_CLASS

VRU_CLASS = 2  # image_semantics: 0 background, 1 vehicle, 2 vulnerable road user, 3 static obstacle
RANGES_M = ((0.0, 10.0), (10.0, 20.0), (0.0, 50.0))


def main() -> None:
    f = student_frames(__doc__.split("\n\n")[0], ["bev_occupancy", "image_labels"])
    args, student, grid, index, cell_x, cell_y = f.args, f.student, f.grid, f.index, f.cell_x, f.cell_y
    rows = []  # (on road, distance m, image head sees it, nearest BEV mark m, mark further out)
    loader = f.loader
    with torch.no_grad():
        for batch in loader:
            obs, tg = batch.observation, batch.targets
            feats = student._encode(obs)[0]
            logits = student.heads["image_aux"](feats, obs)["image_logits"]
            img, sem = torch.softmax(logits, dim=2)[:, :, VRU_CLASS], tg.image_semantics
            img = F.interpolate(img.flatten(0, 1)[:, None], size=sem.shape[-2:], mode="bilinear")
            img = img.view(*sem.shape).numpy()
            occ = torch.sigmoid(student(obs)["occupancy"]).numpy()
            road = tg.bev_occupancy[:, BEV_CHANNELS.index("drivable")].numpy() > 0.5
            for k, fid in enumerate(batch.frame_ids):
                ann = index.get(index.by_frame_id[fid])[0]
                cls, centre = np.asarray(ann["actor_class"]), np.asarray(ann["actor_center_ego"])
                visible = np.asarray(ann["actor_visible_px"]).reshape(len(cls), -1)
                marked = occ[k, BEV_CHANNELS.index("vulnerable")] > 0.5
                for a in range(len(cls)):
                    if OCCUPANCY_CHANNEL_OF_CLASS.get(int(cls[a]), -1) != 1 or not visible[a].any():
                        continue
                    xy = centre[a : a + 1, :2]
                    if not grid.contains(xy)[0]:
                        continue
                    r, c = grid.metric_to_cell(xy)[0]
                    cam = int(visible[a].argmax())
                    pixels = sem[k, cam].numpy() == VRU_CLASS
                    seen_img = bool(pixels.any() and img[k, cam][pixels].max() > 0.5)
                    near, further = math.inf, False
                    if marked.any():
                        d = np.where(marked, np.hypot(cell_x - xy[0, 0], cell_y - xy[0, 1]), np.inf)
                        i, j = np.unravel_index(int(d.argmin()), d.shape)
                        near = float(d[i, j])
                        further = bool(math.hypot(cell_x[i, j], cell_y[i, j]) > math.hypot(*xy[0]))
                    rows.append((bool(road[k, r, c]), float(math.hypot(*xy[0])), seen_img, near, further))
    result = {"checkpoint": str(args.checkpoint), "data": str(args.data), "stride": args.stride, "groups": []}
    head = f"{'objects':<22}{'n':>6}{'image head':>12}{'BEV <=1.5 m':>13}{'<=5 m':>8}"
    print(head + f"{'1.5-5 m: further out':>22}")
    for on_road in (True, False):
        for lo, hi in RANGES_M:
            sel = [r for r in rows if r[0] == on_road and lo <= r[1] < hi]
            if not sel:
                continue
            off = [r for r in sel if 1.5 < r[3] <= 5.0]
            g = {
                "on_road": on_road,
                "range_m": [lo, hi],
                "objects": len(sel),
                "image_head_sees": float(np.mean([r[2] for r in sel])),
                "bev_mark_within_1_5m": float(np.mean([r[3] <= 1.5 for r in sel])),
                "bev_mark_within_5m": float(np.mean([r[3] <= 5.0 for r in sel])),
                "marks_1_5_to_5m": len(off),
                "of_those_further_out": float(np.mean([r[4] for r in off])) if off else None,
            }
            result["groups"].append(g)
            share = g["of_those_further_out"]
            further = "-" if share is None else f"{share:.0%} of {len(off)}"
            name = f"{'on the road' if on_road else 'beside it'} {lo:.0f}-{hi:.0f} m"
            print(
                f"{name:<22}{len(sel):>6}{g['image_head_sees']:>12.0%}{g['bev_mark_within_1_5m']:>13.0%}"
                f"{g['bev_mark_within_5m']:>8.0%}{further:>22}"
            )
    f.write(result)


if __name__ == "__main__":
    main()
