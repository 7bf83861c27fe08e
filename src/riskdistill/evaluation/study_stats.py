"""Statistics of the RSD study: paired comparisons of variants over seeds x routes, per rig and route
selection. Definitions (also in ``docs/experiment.md``):

* **Cells.** A variant's closed-loop result for one training seed on one rig is a *cell*: one
  :class:`RouteOutcome` per route of the suite. Two variants are paired by seed (same seed = same initial
  weights of the shared modules and the same data order) and by route.
* **Metrics.** ``driving_score``: the mean composed route score (RC x IP, %; a crashed route scores 0, as on
  the Bench2Drive leaderboard); ``success_rate``: the share of successful routes (%);
  ``collisions_per_km``: collision infractions (pedestrian, vehicle, layout) over the kilometres driven
  (route length x RC), a ratio of sums as in CARLA (at least 0.001 km).
* **Interval.** 95 % percentile interval of a hierarchical bootstrap (``BOOTSTRAP_DRAWS`` draws, fixed
  ``BOOTSTRAP_SEED``): each draw resamples the seeds with replacement, then the routes with replacement,
  and recomputes the metric of both variants on the same resampled (seed, route) cells. The routes are
  drawn once per draw for all drawn seeds, because every seed drives the same routes (a crossed design);
  so the interval carries both the seed-to-seed and the route-to-route variation. With one seed it is the
  route bootstrap.
* **Paired tests.** Driving Score: Wilcoxon signed-rank test (two-sided, zero differences dropped; p = 1
  when all differences are 0) over routes, on each route's difference averaged over the paired seeds (the
  routes are the independent units; the seed variation is in the interval and in ``per_seed``).
  Success: exact McNemar test over every (seed, route) pair: under no difference each discordant pair
  (one variant succeeds, the other fails) goes either way with probability 1/2, so
  ``p = min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)])``; with several seeds this is the exact test
  stratified by seed (the conditional test only counts discordant pairs), treating the pairs as
  independent.
* **Multiple comparisons.** Holm's step-down correction over a *family*: within one route selection,
  every (pair, rig) comparison's Wilcoxon and McNemar p-values together. p-values that are None (too few
  pairs) are left out of the family.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

CI_LEVEL = 0.95
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 0
MIN_KM = 0.001  # as CARLA: kilometres driven never below this
COLLISION_KINDS = ("collisions_pedestrian", "collisions_vehicle", "collisions_layout")
CRASHED_ENDS = ("Failed - Agent crashed", "Failed - Simulation crashed")
METRICS = ("driving_score", "success_rate", "collisions_per_km")


@dataclass(frozen=True)
class RouteOutcome:
    """What the study keeps of one route of one cell (small, JSON-able)."""

    route_id: str
    scenario: str
    driving_score: float  # composed score RC x IP in %, 0 for a crashed route
    success: bool
    collisions: int  # collision infractions (COLLISION_KINDS)
    km_driven: float  # route length x RC / 100 / 1000
    route_end: str
    held_out_layout: bool = False
    held_out_scenario: bool = False

    @property
    def crashed(self) -> bool:
        return self.route_end in CRASHED_ENDS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RouteOutcome:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def route_outcome(
    doc: Mapping[str, Any], held_out_layout: bool = False, held_out_scenario: bool = False
) -> RouteOutcome:
    """The :class:`RouteOutcome` of a closed-loop route file (``routes/<route_id>.json``); the held-out flags
    come from the caller (the study: :func:`riskdistill.evaluation.generalisation.is_held_out` of the
    route's ``spec``)."""
    from riskdistill.evaluation.driving_score import compute_route_scores, is_success
    from riskdistill.evaluation.results import result_from_dict

    r = result_from_dict(dict(doc))
    rc = min(max(r.route_completion_pct, 0.0), 100.0)
    return RouteOutcome(
        route_id=r.route_id,
        scenario=r.scenario_type,
        driving_score=float(compute_route_scores(r)["score_composed"]),
        success=bool(is_success(r)),
        collisions=sum(1 for e in r.events if str(e.kind) in COLLISION_KINDS),
        km_driven=r.route_length_m * rc / 100.0 / 1000.0,
        route_end=str(r.route_end),
        held_out_layout=held_out_layout,
        held_out_scenario=held_out_scenario,
    )


# ------------------------------------------------------------------------------------------ tests
def holm_adjust(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the given order: with the m valid p-values sorted ascending,
    ``adj_(i) = max_{j <= i} min(1, (m - j) * p_(j))`` (0-based j). None stays None and is not counted."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda k: (pvalues[k], k))):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


def mcnemar_exact(a_success: Any, b_success: Any) -> dict[str, Any]:
    """Exact McNemar test of paired successes: ``a_only`` (a succeeds, b fails), ``b_only`` and the
    two-sided p-value ``min(1, 2 * P[Binomial(a_only + b_only, 1/2) <= min(a_only, b_only)])`` (1 without
    discordant pairs)."""
    a = np.asarray(a_success, dtype=bool).ravel()
    b = np.asarray(b_success, dtype=bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"mcnemar_exact needs equally many pairs, got {a.shape} and {b.shape}")
    n_a, n_b = int((a & ~b).sum()), int((~a & b).sum())
    n = n_a + n_b
    p = 1.0 if n == 0 else float(min(1.0, 2.0 * stats.binom.cdf(min(n_a, n_b), n, 0.5)))
    return {"a_only": n_a, "b_only": n_b, "p": p}


def wilcoxon_p(differences: Any) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (zeros dropped; 1.0 when all are 0,
    None without any)."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    if d.size == 0:
        return None
    if not np.any(d != 0.0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


# ------------------------------------------------------------------------------------------ bootstrap
@dataclass(frozen=True)
class CellMatrix:
    """One variant's per-(seed, route) values: ``[n_seeds, n_routes]`` arrays, rows in ``seeds`` order."""

    seeds: tuple[int, ...]
    route_ids: tuple[str, ...]
    driving_score: np.ndarray
    success: np.ndarray
    collisions: np.ndarray
    km_driven: np.ndarray

    @classmethod
    def build(
        cls, cells: Mapping[int, Mapping[str, RouteOutcome]], seeds: Sequence[int], route_ids: Sequence[str]
    ) -> CellMatrix:
        """From ``{seed: {route_id: outcome}}``; a route missing from a cell counts as crashed (0, no km)."""
        shape = (len(seeds), len(route_ids))
        ds, ok, coll, km = (np.zeros(shape) for _ in range(4))
        for i, s in enumerate(seeds):
            for j, rid in enumerate(route_ids):
                o = cells[s].get(rid)
                if o is not None:
                    ds[i, j], ok[i, j], coll[i, j], km[i, j] = (
                        o.driving_score,
                        float(o.success),
                        o.collisions,
                        o.km_driven,
                    )
        return cls(tuple(seeds), tuple(route_ids), ds, ok, coll, km)

    def metric(self, name: str, w_seed: np.ndarray, w_route: np.ndarray) -> np.ndarray:
        """The metric for each of the D resampled weightings ``w_seed [D, S]``, ``w_route [D, R]`` (counts of
        each seed / route in the draw) -> ``[D]``."""
        total = w_seed.sum(axis=1) * w_route.sum(axis=1)

        def wsum(x: np.ndarray) -> np.ndarray:
            return np.einsum("ds,sr,dr->d", w_seed, x, w_route)

        if name == "driving_score":
            return wsum(self.driving_score) / total
        if name == "success_rate":
            return 100.0 * wsum(self.success) / total
        if name == "collisions_per_km":
            return wsum(self.collisions) / np.maximum(wsum(self.km_driven), MIN_KM)
        raise ValueError(f"unknown study metric {name!r}; valid: {list(METRICS)}")

    def value(self, name: str) -> float:
        return float(self.metric(name, np.ones((1, len(self.seeds))), np.ones((1, len(self.route_ids))))[0])


def bootstrap_weights(
    n_seeds: int, n_routes: int, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """``(w_seed [D, S], w_route [D, R])``: how often each seed, then each route, is drawn in each of the
    ``draws`` hierarchical bootstrap samples (seeds with replacement, then routes with replacement)."""
    rng = np.random.default_rng(seed)
    si = rng.integers(0, n_seeds, size=(draws, n_seeds))
    ri = rng.integers(0, n_routes, size=(draws, n_routes))
    w_seed = np.stack([np.bincount(row, minlength=n_seeds) for row in si]).astype(np.float64)
    w_route = np.stack([np.bincount(row, minlength=n_routes) for row in ri]).astype(np.float64)
    return w_seed, w_route


def _interval(samples: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return float(lo), float(hi)


def describe_variant(m: CellMatrix, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED) -> dict:
    """Each metric of one variant: mean and hierarchical-bootstrap 95 % interval, and the per-seed values."""
    ws, wr = bootstrap_weights(len(m.seeds), len(m.route_ids), draws, seed)
    out: dict[str, Any] = {"seeds": list(m.seeds), "n_routes": len(m.route_ids)}
    one = np.ones((1, len(m.route_ids)))
    for name in METRICS:
        lo, hi = _interval(m.metric(name, ws, wr))
        per_seed = [
            float(m.metric(name, np.eye(len(m.seeds))[i : i + 1], one)[0]) for i in range(len(m.seeds))
        ]
        out[name] = {"mean": m.value(name), "ci_low": lo, "ci_high": hi, "per_seed": per_seed}
    return out


def compare_pair(
    a: CellMatrix, b: CellMatrix, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """``a - b`` for every metric (same seeds and routes, in the same order): the means, the difference,
    its hierarchical-bootstrap 95 % interval, the per-seed differences, and the paired tests (Wilcoxon on
    DS, McNemar on success). See the module docstring."""
    if a.seeds != b.seeds or a.route_ids != b.route_ids:
        raise ValueError("compare_pair needs both variants on the same seeds and routes, in the same order")
    n_s, n_r = len(a.seeds), len(a.route_ids)
    if n_s == 0 or n_r == 0:
        raise ValueError(f"compare_pair needs at least one seed and one route, got {n_s} and {n_r}")
    ws, wr = bootstrap_weights(n_s, n_r, draws, seed)
    one = np.ones((1, n_r))
    out: dict[str, Any] = {"seeds": list(a.seeds), "n_routes": n_r}
    for name in METRICS:
        diff = a.metric(name, ws, wr) - b.metric(name, ws, wr)
        lo, hi = _interval(diff)
        per_seed = []
        for i in range(n_s):
            w = np.eye(n_s)[i : i + 1]
            per_seed.append(float(a.metric(name, w, one)[0] - b.metric(name, w, one)[0]))
        out[name] = {
            "mean_a": a.value(name),
            "mean_b": b.value(name),
            "diff": a.value(name) - b.value(name),
            "ci_low": lo,
            "ci_high": hi,
            "per_seed": per_seed,
        }
    route_diff = (a.driving_score - b.driving_score).mean(axis=0)  # [R]: averaged over the paired seeds
    out["driving_score"]["wilcoxon_p"] = wilcoxon_p(route_diff)
    mc = mcnemar_exact(a.success > 0.5, b.success > 0.5)
    out["success_rate"].update({"mcnemar_p": mc["p"], "a_only": mc["a_only"], "b_only": mc["b_only"]})
    return out


# ------------------------------------------------------------------------------------------ the study
Cells = Mapping[tuple[str, int, str], Mapping[str, RouteOutcome]]  # (variant, seed, rig) -> routes


def route_selections(outcomes: Sequence[RouteOutcome]) -> dict[str, list[str]]:
    """``{"all": ids, "heldout-layout": ids, "heldout-scenario": ids}`` from the routes' held-out flags (a
    selection without routes is left out)."""
    out = {"all": [o.route_id for o in outcomes]}
    layout = [o.route_id for o in outcomes if o.held_out_layout]
    scenario = [o.route_id for o in outcomes if o.held_out_scenario]
    if layout:
        out["heldout-layout"] = layout
    if scenario:
        out["heldout-scenario"] = scenario
    return out


def compute_study_statistics(
    cells: Cells,
    route_ids: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    rigs: Sequence[str],
    selections: Mapping[str, Sequence[str]] | None = None,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Every variant described and every pair ``(a, b)`` compared (``a - b``), on every rig and route
    selection (default: all routes). A pair uses the seeds both variants have on that rig; the others are
    listed in ``missing_seeds``, never averaged over. Holm-adjusted p-values per selection
    (``wilcoxon_p_holm``, ``mcnemar_p_holm``)."""
    selections = dict(selections or {"all": list(route_ids)})
    variants = sorted({v for v, _, _ in cells})
    seeds_of: dict[tuple[str, str], list[int]] = {}
    for v, s, r in cells:
        seeds_of.setdefault((v, r), []).append(s)
    describe: dict[str, Any] = {}
    comparisons: list[dict[str, Any]] = []
    for sel, ids in selections.items():
        ids = [r for r in route_ids if r in set(ids)]
        for rig in rigs:
            for v in variants:
                seeds = sorted(seeds_of.get((v, rig), []))
                if seeds:
                    m = CellMatrix.build({s: cells[v, s, rig] for s in seeds}, seeds, ids)
                    describe.setdefault(v, {}).setdefault(rig, {})[sel] = describe_variant(m, draws, seed)
            for a, b in pairs:
                sa, sb = set(seeds_of.get((a, rig), [])), set(seeds_of.get((b, rig), []))
                common = sorted(sa & sb)
                entry: dict[str, Any] = {
                    "a": a,
                    "b": b,
                    "rig": rig,
                    "selection": sel,
                    "missing_seeds": {a: sorted(sb - sa), b: sorted(sa - sb)},
                }
                if common:
                    ma = CellMatrix.build({s: cells[a, s, rig] for s in common}, common, ids)
                    mb = CellMatrix.build({s: cells[b, s, rig] for s in common}, common, ids)
                    entry.update(compare_pair(ma, mb, draws, seed))
                else:
                    entry.update({"seeds": [], "n_routes": len(ids)})
                comparisons.append(entry)
        family = [c for c in comparisons if c["selection"] == sel and "driving_score" in c]
        ps = [c["driving_score"]["wilcoxon_p"] for c in family] + [
            c["success_rate"]["mcnemar_p"] for c in family
        ]
        adj = holm_adjust(ps)
        for k, c in enumerate(family):
            c["driving_score"]["wilcoxon_p_holm"] = adj[k]
            c["success_rate"]["mcnemar_p_holm"] = adj[len(family) + k]
    return {
        "ci_level": CI_LEVEL,
        "bootstrap": {"draws": draws, "seed": seed, "scheme": "seeds with replacement, then routes"},
        "holm_family": "per route selection: every (pair, rig) Wilcoxon (DS) and McNemar (success) p-value",
        "metrics": list(METRICS),
        "selections": {k: len(v) for k, v in selections.items()},
        "variants": describe,
        "comparisons": comparisons,
    }


# ------------------------------------------------------------------------------------------ tables
def _f(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.{digits}f}"


def _p(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def render_study_markdown(statistics: dict[str, Any]) -> str:
    """The comparison tables: per route selection, one row per (pair, rig) with the DS / SR / collisions
    per km differences, their 95 % intervals and the Holm-adjusted p-values (raw in brackets)."""
    lines: list[str] = []
    for sel, n in statistics["selections"].items():
        lines += [
            f"## Paired differences, {sel} routes ({n}): a - b, mean [95 % CI]",
            "",
            "| a - b | rig | seeds | DS | Wilcoxon p (Holm) [raw] | SR % | McNemar p (Holm) [raw] "
            "| collisions / km |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in statistics["comparisons"]:
            if c["selection"] != sel:
                continue
            missing = ", ".join(f"{v} lacks {s}" for v, s in c["missing_seeds"].items() if s)
            seeds = ",".join(map(str, c["seeds"])) + (f" ({missing})" if missing else "")
            if "driving_score" not in c:
                lines.append(f"| {c['a']} - {c['b']} | {c['rig']} | none ({missing}) | - | - | - | - | - |")
                continue
            cells = []
            for name, test in (
                ("driving_score", "wilcoxon_p"),
                ("success_rate", "mcnemar_p"),
                ("collisions_per_km", None),
            ):
                m = c[name]
                digits = 3 if name == "collisions_per_km" else 1
                cells.append(
                    f"{_f(m['diff'], digits)} [{_f(m['ci_low'], digits)}, {_f(m['ci_high'], digits)}]"
                )
                if test:
                    cells.append(f"{_p(m[test + '_holm'])} [{_p(m[test])}]")
            lines.append(f"| {c['a']} - {c['b']} | {c['rig']} | {seeds} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Variants, all routes: mean [95 % CI]",
        "",
        "| variant | rig | seeds | DS | SR % | collisions / km |",
        "|---|---|---|---|---|---|",
    ]
    for v, by_rig in statistics["variants"].items():
        for rig, by_sel in by_rig.items():
            d = by_sel.get("all")
            if d is None:
                continue
            cells = []
            for name in METRICS:
                m, k = d[name], (3 if name == "collisions_per_km" else 1)
                cells.append(f"{m['mean']:.{k}f} [{m['ci_low']:.{k}f}, {m['ci_high']:.{k}f}]")
            lines.append(f"| {v} | {rig} | {','.join(map(str, d['seeds']))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
