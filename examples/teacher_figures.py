"""The figures of docs/teachers.md: the oracle's terms, and its risk maps on six scenario types.

    python examples/teacher_figures.py --out docs/images

- ``oracle_terms.png``: the time and distance decays and the near-miss / occlusion / proximity terms of
  the oracle (``teacher/oracle.py``) with their units, and one synthetic frame seen from above: the
  counterfactual ego driving its route, the predicted actors and the first conflict;
- ``teacher_maps_six_scenarios.png``: the oracle's BEV risk map (default ``RasterConfig``: objects and the
  drivable-edge boundary) at a frame of the first ``bench`` route of six scenario types where the named
  hazard is within 40 m and its counterfactual time to conflict is under 4 s (the third such frame at
  5 Hz: the hazard as it develops); hazards outlined in white, other actors in grey.

The expert drives each route in the simulator without cameras (``data.annotate.annotate_route``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from riskdistill.geometry import BevGrid, box_corners_2d
from riskdistill.teacher.conflict import Scene, actor_tracks, compute_conflicts, scene_from_annotation
from riskdistill.teacher.oracle import OracleConfig, OracleTeacher
from riskdistill.teacher.rasterise import RasterConfig, rasterise_label

SIX = (
    "PedestrianCrossing",
    "DynamicObjectCrossing",
    "HardBreakRoute",
    "StaticCutIn",
    "OppositeVehicleTakingPriority",
    "AccidentTwoWays",
)
GRID = BevGrid(x_min_m=-10.0, x_max_m=50.0, y_min_m=-20.0, y_max_m=20.0, resolution_m=0.2)


def _extent(grid: BevGrid) -> list[float]:
    """imshow extent with x (ego forward) up and y (ego left) to the left: plot (-y, x)."""
    return [-grid.y_max_m, -grid.y_min_m, grid.x_min_m, grid.x_max_m]


def _box(ax, c, yaw, size, **kw) -> None:
    pts = box_corners_2d(np.asarray(c, dtype=float), float(yaw), float(size[0]), float(size[1]))
    pts = np.vstack([pts, pts[:1]])
    ax.plot(-pts[:, 1], pts[:, 0], **kw)


def terms_figure(path: Path) -> None:
    c = OracleConfig()
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.0), dpi=110)
    t = np.linspace(0, 8, 200)
    ax = axes[0]
    ax.plot(t, 1 / (1 + (t / c.ttc_half_s) ** c.ttc_power), color="tab:red")
    ax.axvline(4.0, color="grey", ls=":")
    ax.set(xlabel="time to conflict (s)", ylabel="f", title=f"time decay f (half at {c.ttc_half_s:.0f} s)")
    d = np.linspace(0, 150, 200)
    ax = axes[1]
    ax.plot(d, 1 / (1 + (d / c.distance_half_m) ** 2), color="tab:blue")
    ax.axvline(40.0, color="grey", ls=":")
    ax.set(
        xlabel="current box gap (m)",
        ylabel="g",
        title=f"distance decay g (half at {c.distance_half_m:.0f} m)",
    )
    g = np.linspace(0, 4, 200)
    ax = axes[2]
    end = c.conflict_margin_m + c.near_miss_m
    for m, name in ((c.conflict_margin_m, "standing actor"), (c.conflict_margin_moving_m, "moving actor")):
        near = np.where(g <= m, 1.0, c.w_near_miss * np.clip((end - g) / (end - m), 0, 1))
        ax.plot(g, near, label=f"{name}: conflict below {m} m")
    occ = c.w_occlusion * np.clip(1 - (g - c.conflict_margin_m) / c.occlusion_lateral_m, 0, 1)
    ax.plot(g, np.where(g > c.conflict_margin_m, occ, np.nan), ls="--", label="occluder (x f x g)")
    ax.plot(g, c.w_proximity * np.exp(-g / c.proximity_scale_m), ls=":", label="proximity (gap now)")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set(
        xlabel="smallest predicted box gap (m)", ylabel="term (x f(t) x g(d))", title="conflict, near miss"
    )
    ax.legend(fontsize=7)
    # a synthetic frame: straight route, a pedestrian crossing, a car turning in, a parked van
    route = np.stack([np.arange(151.0), np.zeros(151)], 1)
    ped_path = np.stack([np.full(32, 22.0), 4.0 - np.arange(32.0)], 1)
    lc = np.stack([30.0 + np.arange(32.0), 3.5 * np.clip(1 - np.arange(32.0) / 14.0, 0, 1)], 1)
    scene = Scene(
        ego_speed_mps=8.0,
        center_xy=np.array([[22.0, 4.0], [30.0, 3.5], [14.0, -2.9]]),
        size_lw=np.array([[0.5, 0.5], [4.6, 1.9], [5.2, 2.1]]),
        yaw=np.array([-np.pi / 2, 0.0, 0.0]),
        velocity_xy=np.array([[0.0, -1.4], [3.0, 0.0], [0.0, 0.0]]),
        route_xy=route,
        route_limit_mps=np.full(151, 10.0),
        path_xy=np.stack([ped_path, lc, np.repeat([[14.0, -2.9]], 32, 0)]),
        path_step_m=np.array([1.0, 1.0, 0.0]),
        is_walker=np.array([True, False, False]),
    )
    teacher = OracleTeacher()
    k = compute_conflicts(scene, c.conflict_params())
    s = teacher.score([4, 0, 1], scene)
    xy, head = actor_tracks(scene, k.plan, c.conflict_params())
    ax = axes[3]
    for i in range(0, len(k.plan.t), 5):
        h = k.plan.heading[i]
        cen = k.plan.xy[i] + 1.45 * np.array([np.cos(h), np.sin(h)])
        _box(ax, cen, h, (4.6, 1.9), color="tab:cyan", lw=0.8, alpha=0.4 + 0.6 * (i == 0))
        for a, col in enumerate(("tab:red", "tab:orange", "tab:purple")):
            _box(ax, xy[a, i], head[a, i], scene.size_lw[a], color=col, lw=0.8, alpha=0.35 + 0.65 * (i == 0))
    for a, (name, col) in enumerate(
        (("pedestrian", "tab:red"), ("car cutting in", "tab:orange"), ("parked van", "tab:purple"))
    ):
        ttc = "no conflict" if not np.isfinite(s.ttc[a]) else f"TTC {s.ttc[a]:.1f} s"
        where = (-scene.center_xy[a, 1] + 0.8, scene.center_xy[a, 0] + 1.0)
        ax.text(*where, f"{name}\n{ttc}, risk {s.risk[a]:.2f}", color=col, fontsize=7)
    ax.text(1.0, 1.0, "ego (every 1 s)", color="tab:cyan", fontsize=7)
    ax.set(xlim=(-10, 10), ylim=(-4, 40), aspect="equal", xlabel="left <- y (m)", ylabel="x forward (m)",
           title="counterfactual ego vs predicted actors")  # fmt: skip
    ax.invert_xaxis()
    ax.set_xticks([-8, 0, 8], ["8", "0", "-8"])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pick_frame(scenario: str) -> tuple[dict, dict, float]:
    from riskdistill.data.annotate import annotate_route
    from riskdistill.sim.scenarios import build_scenario
    from riskdistill.sim.suites import load_suite

    spec = next(r for r in load_suite("bench").routes if r.scenario == scenario)
    frames = annotate_route(build_scenario(spec.scenario, spec.seed, spec.layout), every_n_steps=2)
    cands = []
    for meta, ann in frames:
        k = compute_conflicts(
            scene_from_annotation(ann, meta["ego_speed_mps"]), OracleConfig().conflict_params()
        )
        q = ann["actor_is_hazard"] & (k.gap_now_m <= 40.0) & (k.ttc_s < 4.0)
        if q.any():
            cands.append((float(k.ttc_s[q].min()), meta, ann))
    ttc, meta, ann = cands[min(2, len(cands) - 1)]  # as the hazard develops: the third qualifying frame
    return meta, ann, ttc


def maps_figure(path: Path, scenarios: tuple[str, ...] = SIX) -> None:
    teacher = OracleTeacher()
    fig, axes = plt.subplots(2, 3, figsize=(11, 10.5), dpi=110, constrained_layout=True)
    for ax, scenario in zip(axes.ravel(), scenarios, strict=True):
        meta, ann, ttc = _pick_frame(scenario)
        label = teacher.label_annotation("fig/00000", ann, meta["ego_speed_mps"])
        risk = {o.object_id: o.risk for o in label.objects}
        m, _ = rasterise_label(risk, ann, GRID, RasterConfig())
        ax.imshow(np.zeros_like(m), cmap="gray", vmin=0, vmax=1, extent=_extent(GRID))
        for k in range(len(ann["lane_n_points"])):  # lane edges, dim
            n = int(ann["lane_n_points"][k])
            for key in ("lane_left_boundary", "lane_right_boundary"):
                p = ann[key][k, :n]
                ax.plot(-p[:, 1], p[:, 0], color=(0.35, 0.35, 0.38), lw=0.5)
        ax.imshow(
            np.ma.masked_less(m, 0.01), cmap="inferno", vmin=0, vmax=1, extent=_extent(GRID), alpha=0.95
        )
        r = ann["route_ahead_ego"]
        ax.plot(-r[:, 1], r[:, 0], color="tab:cyan", lw=0.8, ls="--")
        _box(ax, [1.45, 0.0], 0.0, (4.6, 1.9), color="tab:cyan", lw=1.2)
        best = None
        for i, aid in enumerate(ann["actor_id"].tolist()):
            hz = bool(ann["actor_is_hazard"][i])
            c, yaw, size = (
                ann["actor_center_ego"][i, :2],
                ann["actor_yaw_ego"][i],
                ann["actor_size_lwh"][i, :2],
            )
            _box(ax, c, yaw, size, color="white" if hz else (0.55, 0.55, 0.6), lw=1.3 if hz else 0.6)
            if hz and (best is None or risk.get(aid, 0.0) > best[1]):
                best = (aid, risk.get(aid, 0.0))
        top = label.objects[0]
        first = "the hazard" if top.object_id == best[0] else f"a {top.cls}"
        ax.set_title(f"{scenario}\nhazard {best[1]:.2f} (TTC {ttc:.1f} s), top-ranked: {first}", fontsize=8)
        ax.set(xlim=(-GRID.y_max_m, -GRID.y_min_m), ylim=(GRID.x_min_m, GRID.x_max_m))
        ax.set_xticks([])
        ax.set_yticks([])
    sm = plt.cm.ScalarMappable(cmap="inferno", norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes, shrink=0.5, label="oracle risk")
    title = "Oracle risk maps (forward is up; 10 m behind to 50 m ahead, 40 m wide): named hazards in white"
    fig.suptitle(title, fontsize=11)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/images")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    terms_figure(out / "oracle_terms.png")
    maps_figure(out / "teacher_maps_six_scenarios.png")
    print(f"wrote {out / 'oracle_terms.png'} and {out / 'teacher_maps_six_scenarios.png'}")


if __name__ == "__main__":
    main()
