"""Comparing closed-loop runs: one table with mean and 95 % confidence interval per label, and paired
per-route differences with significance tests (``riskdistill eval compare``). Definitions:
``docs/metrics.md``.

A *run* is an output folder of ``riskdistill eval closed-loop`` (``results.json``, ``summary.json``,
``routes/<route_id>.json``). Runs are grouped by *label* (``baseline``, ``rsd``, ``control``, ...); each label
may hold several seeds.

Runs are grouped by *(label, rig)*: the rig is the run's rig shift (``nominal`` without one), so runs of one
label under several rigs are never mixed; a group under a shifted rig is named ``label@rig``.

* Several seeds: the mean over seeds of each summary metric, 95 % CI from the t distribution with
  ``n_seeds - 1`` degrees of freedom (``mean +- t_0.975 * sd / sqrt(n)``).
* One seed: the CI is a percentile bootstrap over the suite's routes (routes resampled with replacement,
  2000 draws, fixed seed) of the route-level metrics (DS, RC, IP, SR, Efficiency, Comfortness); for DS, RC,
  IP and SR a route missing from the run counts 0 in the bootstrap as in the mean, so both are over the
  same routes.
* Paired, for each pair of labels on each rig (``pairs``; default: every label against the reference
  label, the first), on the routes both have:

  - ``driving_score``, ``success_rate``, ``collisions_per_km``: the study statistics of
    :mod:`riskdistill.evaluation.study_stats` on the seeds both labels have (paired by seed): difference
    ``label - reference``, 95 % interval of the hierarchical bootstrap over seeds then routes (it keeps the
    seed variation), Wilcoxon signed-rank over routes for DS, exact McNemar for success, and
    Holm-adjusted p-values over every paired test of the comparison (``wilcoxon_p_holm``,
    ``mcnemar_p_holm``);
  - ``score_composed`` and ``score_route`` (kept for the report): the per-route composed score and RC
    averaged over each label's seeds, with the mean difference, its t CI, the Wilcoxon signed-rank test
    (two-sided, ``scipy.stats.wilcoxon``, zero differences dropped) and the paired t test
    (``scipy.stats.ttest_rel``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from riskdistill.evaluation.study_stats import (
    CellMatrix,
    RouteOutcome,
    compare_pair,
    holm_adjust,
    route_outcome,
)
from riskdistill.io import atomic_write_json, atomic_write_text, load_json

NOMINAL = "nominal"

CI_LEVEL = 0.95
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 0

#: Summary metrics of the comparison table, in order (key of summary.json, column title).
TABLE_METRICS: tuple[tuple[str, str], ...] = (
    ("driving_score", "DS"),
    ("success_rate", "SR %"),
    ("route_completion", "RC %"),
    ("infraction_penalty", "IP"),
    ("efficiency", "Efficiency"),
    ("comfortness", "Comfort %"),
    ("ability_mean", "Ability mean %"),
)
#: Per-route value behind each bootstrappable metric (key of a route's scores dict).
_ROUTE_METRIC = {
    "driving_score": "score_composed",
    "success_rate": "success_pct",
    "route_completion": "score_route",
    "infraction_penalty": "score_penalty",
    "efficiency": "efficiency",
    "comfortness": "comfort_pct",
}
_SEED_IN_NAME = re.compile(r"^(?P<label>.+?)[_-]?(?:seed|s)(?P<seed>\d+)$")


@dataclass
class RunData:
    """One evaluated run: its label, seed, summary and per-route values (``scores[route_id][key]``)."""

    path: Path
    label: str
    seed: int | None
    summary: dict[str, Any]
    route_ids: list[str]
    scores: dict[str, dict[str, float | None]]
    variant: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, RouteOutcome] = field(default_factory=dict)  # routes with a route file

    @property
    def rig(self) -> str:
        """The rig shift the run was evaluated under (``nominal`` without one)."""
        return (self.variant or {}).get("rig_shift") or NOMINAL


def _label_from_name(name: str) -> tuple[str, int | None]:
    m = _SEED_IN_NAME.match(name)
    return (m["label"], int(m["seed"])) if m else (name, None)


def load_run(run_dir: str | Path, label: str | None = None) -> RunData:
    """Read a closed-loop output folder. The label defaults to ``run.json``'s ``config.label``, else the
    folder name without a ``_seedN`` / ``-sN`` suffix (which gives the seed)."""
    from riskdistill.evaluation.driving_score import compute_route_scores, compute_summary, is_success
    from riskdistill.evaluation.leaderboard import load_checkpoint_json, record_route_name
    from riskdistill.evaluation.results import result_from_dict

    run_dir = Path(run_dir)
    records = load_checkpoint_json(run_dir / "results.json")
    name_label, seed = _label_from_name(run_dir.name)
    run_json = run_dir / "run.json"
    cfg = load_json(run_json).get("config", {}) if run_json.is_file() else {}
    label = label or cfg.get("label") or name_label
    if cfg.get("seed") is not None:
        seed = int(cfg["seed"])
    scores: dict[str, dict[str, float | None]] = {}
    outcomes: dict[str, RouteOutcome] = {}
    results = []
    for rec in records:
        rid = record_route_name(rec)
        route_file = run_dir / "routes" / f"{rid}.json"
        if route_file.is_file():
            doc = load_json(route_file)
            r = result_from_dict(doc)
            outcomes[rid] = route_outcome(doc)
            results.append(r)
            s = compute_route_scores(r)
            scores[rid] = {
                **s,
                "success_pct": 100.0 * is_success(r),
                "efficiency": r.efficiency,
                "comfort_pct": None if r.comfort is None else 100.0 * r.comfort,
            }
        else:  # a foreign checkpoint file: scores and the success rule from the record only
            inf = rec["infractions"]
            ok = rec["status"] in ("Perfect", "Completed") and all(
                not v for k, v in inf.items() if k != "min_speed_infractions"
            )
            scores[rid] = {
                **rec["scores"],
                "success_pct": 100.0 * ok,
                "efficiency": None,
                "comfort_pct": None,
            }
    summary_file = run_dir / "summary.json"
    if summary_file.is_file():
        summary = load_json(summary_file)
    elif results:
        summary = compute_summary(results, n_routes_in_suite=len(records))
    else:
        summary = {}
    variant = summary.get("variant") or {}
    route_ids = [record_route_name(r) for r in records]
    return RunData(run_dir, label, seed, summary, route_ids, scores, variant, outcomes)


# ------------------------------------------------------------------------------------------ statistics
def t_confidence_interval(values: Sequence[float], level: float = CI_LEVEL) -> dict[str, float | None]:
    """Mean and the t-distribution CI over ``values`` (e.g. one metric over seeds). With one value the CI is
    None; ``half_width = t_{(1+level)/2, n-1} * sd / sqrt(n)`` with the sample standard deviation."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0, "method": "t"}
    mean = float(x.mean())
    if n == 1:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": 1, "method": "t"}
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n, "method": "t"}


def bootstrap_confidence_interval(
    values: Sequence[float],
    level: float = CI_LEVEL,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, float | None]:
    """Mean and the percentile-bootstrap CI of the mean over ``values`` (e.g. per-route scores)."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0, "method": "bootstrap"}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(draws, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return {"mean": float(x.mean()), "ci_low": float(lo), "ci_high": float(hi), "n": n, "method": "bootstrap"}


def paired_test(reference: Sequence[float], other: Sequence[float]) -> dict[str, float | int | None]:
    """Paired differences ``other - reference``: ``n``, ``mean_diff``, its t CI, the Wilcoxon signed-rank
    p-value (two-sided, zero differences dropped; 1.0 when every difference is zero) and the paired t test
    p-value (None with fewer than two pairs or zero variance)."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_test needs equally many values, got {a.shape} and {b.shape}")
    d = b - a
    n = len(d)
    out: dict[str, float | int | None] = {
        "n": n,
        "mean_diff": float(d.mean()) if n else None,
        "wilcoxon_p": None,
        "ttest_p": None,
    }
    ci = t_confidence_interval(d.tolist())
    out["ci_low"], out["ci_high"] = ci["ci_low"], ci["ci_high"]
    if n == 0:
        return out
    nonzero = d[d != 0.0]
    if len(nonzero) == 0:
        out["wilcoxon_p"] = 1.0
    else:
        out["wilcoxon_p"] = float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    if n >= 2 and d.std(ddof=1) > 0.0:
        out["ttest_p"] = float(stats.ttest_rel(b, a).pvalue)
    return out


# ------------------------------------------------------------------------------------------ comparison
def _route_mean(runs: Sequence[RunData], key: str) -> dict[str, float]:
    """Per route, the mean of ``key`` over the runs that have the route."""
    acc: dict[str, list[float]] = {}
    for run in runs:
        for rid, s in run.scores.items():
            if s.get(key) is not None:
                acc.setdefault(rid, []).append(float(s[key]))
    return {rid: float(np.mean(v)) for rid, v in acc.items()}


def _padded_route_values(run: RunData, key: str) -> list[float | None]:
    """The run's per-route values of a summary metric; for DS, RC, IP and SR the routes of the suite
    missing from the run (``summary.n_routes`` > routes scored) count 0, as in the summary's mean."""
    values = [s.get(_ROUTE_METRIC[key]) for s in run.scores.values()]
    if key in ("driving_score", "success_rate", "route_completion", "infraction_penalty"):
        values = [0.0 if v is None else v for v in values]
        missing = int(run.summary.get("n_routes") or len(values)) - len(values)
        values += [0.0] * max(missing, 0)
    return values


def _label_metrics(rs: Sequence[RunData]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for key, _ in TABLE_METRICS:
        if len(rs) > 1:
            metrics[key] = t_confidence_interval([r.summary.get(key) for r in rs])
        elif key in _ROUTE_METRIC:
            metrics[key] = bootstrap_confidence_interval(_padded_route_values(rs[0], key))
        else:
            v = rs[0].summary.get(key)
            metrics[key] = {"mean": v, "ci_low": None, "ci_high": None, "n": 1, "method": None}
    return metrics


def _seed_cells(rs: Sequence[RunData]) -> dict[int, dict[str, RouteOutcome]]:
    """``{seed: outcomes}`` of a group (a run without a seed gets its position in the group)."""
    out: dict[int, dict[str, RouteOutcome]] = {}
    for k, r in enumerate(rs):
        seed = r.seed if r.seed is not None else k
        if seed in out:
            raise ValueError(f"{r.path}: seed {seed} appears twice in the runs of label {r.label!r}")
        out[seed] = r.outcomes
    return out


def _pair_entry(a: str, b: str, rig: str, ra: Sequence[RunData], rb: Sequence[RunData]) -> dict[str, Any]:
    """One paired comparison ``a - b`` on one rig (see the module docstring)."""
    entry: dict[str, Any] = {"reference": b, "label": a, "a": a, "b": b, "rig": rig}
    for key in ("score_composed", "score_route"):
        ref_m, oth_m = _route_mean(rb, key), _route_mean(ra, key)
        common = sorted(set(ref_m) & set(oth_m))
        entry[key] = paired_test([ref_m[r] for r in common], [oth_m[r] for r in common])
    ca, cb = _seed_cells(ra), _seed_cells(rb)
    seeds = sorted(set(ca) & set(cb))
    first = ra[0].route_ids
    routes = [r for r in first if all(r in x.outcomes for x in (*ra, *rb))]
    entry["missing_seeds"] = {a: sorted(set(cb) - set(ca)), b: sorted(set(ca) - set(cb))}
    if seeds and routes:
        ma = CellMatrix.build({s: ca[s] for s in seeds}, seeds, routes)
        mb = CellMatrix.build({s: cb[s] for s in seeds}, seeds, routes)
        entry.update(compare_pair(ma, mb))
    else:
        entry.update({"seeds": seeds, "n_routes": len(routes)})
    return entry


def compare_runs(
    runs: Sequence[RunData], reference: str | None = None, pairs: Sequence[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """The comparison of ``runs``, grouped by (label, rig) in first-seen order: ``{"labels": {name: {"runs",
    "seeds", "rig", "metrics": {metric: ci}}}, "paired": [...]}`` (``name`` is the label, ``label@rig`` on a
    shifted rig). ``pairs``: ``(a, b)`` label pairs compared as ``a - b`` on every rig both have (default:
    every label against ``reference``, which defaults to the first label). Holm's correction runs over all
    the paired Wilcoxon (DS) and McNemar (success) p-values."""
    groups: dict[tuple[str, str], list[RunData]] = {}
    for run in runs:
        groups.setdefault((run.label, run.rig), []).append(run)
    if not groups:
        raise ValueError("compare_runs needs at least one run")
    label_order = list(dict.fromkeys(label for label, _ in groups))
    rigs = list(dict.fromkeys(rig for _, rig in groups))
    reference = reference or label_order[0]
    if reference not in label_order:
        raise ValueError(f"reference label {reference!r} is not among the labels {label_order}")
    if pairs is None:
        pairs = [(label, reference) for label in label_order if label != reference]
    for a, b in pairs:
        for x in (a, b):
            if x not in label_order:
                raise ValueError(f"pair {a}-{b}: label {x!r} is not among the labels {label_order}")
    labels: dict[str, Any] = {}
    for (label, rig), rs in groups.items():
        labels[label if rig == NOMINAL else f"{label}@{rig}"] = {
            "label": label,
            "rig": rig,
            "runs": [str(r.path) for r in rs],
            "seeds": [r.seed for r in rs],
            "variants": [r.variant for r in rs],
            "metrics": _label_metrics(rs),
        }
    paired = [
        _pair_entry(a, b, rig, groups[a, rig], groups[b, rig])
        for rig in rigs
        for a, b in pairs
        if (a, rig) in groups and (b, rig) in groups
    ]
    tested = [e for e in paired if "driving_score" in e]
    adj = holm_adjust(
        [e["driving_score"]["wilcoxon_p"] for e in tested] + [e["success_rate"]["mcnemar_p"] for e in tested]
    )
    for k, e in enumerate(tested):
        e["driving_score"]["wilcoxon_p_holm"] = adj[k]
        e["success_rate"]["mcnemar_p_holm"] = adj[len(tested) + k]
    return {"reference": reference, "ci_level": CI_LEVEL, "labels": labels, "paired": paired}


def _fmt_ci(ci: dict[str, Any]) -> str:
    if ci.get("mean") is None:
        return "-"
    s = f"{ci['mean']:.2f}"
    if ci.get("ci_low") is not None:
        s += f" [{ci['ci_low']:.2f}, {ci['ci_high']:.2f}]"
    return s


def _fmt_p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def render_markdown(comparison: dict[str, Any]) -> str:
    """The comparison as markdown: the metric table (mean [95 % CI]) and the paired-difference table."""
    cols = [title for _, title in TABLE_METRICS]
    lines = [
        f"## Closed-loop comparison (mean [{100 * comparison['ci_level']:.0f} % CI])",
        "",
        "| label | runs | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for label, g in comparison["labels"].items():
        cells = [_fmt_ci(g["metrics"][key]) for key, _ in TABLE_METRICS]
        lines.append(f"| {label} | {len(g['runs'])} | " + " | ".join(cells) + " |")
    if comparison["paired"]:
        lines += [
            "",
            "## Paired differences a - b (seeds x routes; 95 % CI: bootstrap over seeds, then routes)",
            "",
            "| a - b | rig | seeds | routes | DS diff [95 % CI] | Wilcoxon p | Holm p | SR diff [95 % CI] "
            "| McNemar p | Holm p | collisions/km diff [95 % CI] |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for e in comparison["paired"]:
            name = f"{e['label']} - {e['reference']}"
            seeds = ",".join(str(x) for x in e.get("seeds", []))
            if "driving_score" not in e:
                lines.append(f"| {name} | {e['rig']} | {seeds or 'none'} | {e['n_routes']} |" + " - |" * 7)
                continue
            ds, sr, ck = e["driving_score"], e["success_rate"], e["collisions_per_km"]

            def diff(m: dict[str, Any], digits: int = 2) -> str:
                return f"{m['diff']:.{digits}f} [{m['ci_low']:.{digits}f}, {m['ci_high']:.{digits}f}]"

            lines.append(
                f"| {name} | {e['rig']} | {seeds} | {e['n_routes']} | {diff(ds)} | "
                f"{_fmt_p(ds['wilcoxon_p'])} | {_fmt_p(ds['wilcoxon_p_holm'])} | {diff(sr)} | "
                f"{_fmt_p(sr['mcnemar_p'])} | {_fmt_p(sr['mcnemar_p_holm'])} | {diff(ck, 3)} |"
            )
    return "\n".join(lines) + "\n"


def parse_run_arg(arg: str) -> tuple[str | None, Path]:
    """``"LABEL=DIR"`` -> (label, DIR); ``"DIR"`` -> (None, DIR)."""
    if "=" in arg and not Path(arg).exists():
        label, _, path = arg.partition("=")
        return label, Path(path)
    return None, Path(arg)


def write_comparison(
    run_args: Sequence[str],
    out_dir: str | Path,
    reference: str | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Load the runs (``LABEL=DIR`` or ``DIR``), compare them (:func:`compare_runs`) and write
    ``comparison.json`` and ``comparison.md`` to ``out_dir``. Returns the comparison."""
    out_dir = Path(out_dir)
    runs = []
    for arg in run_args:
        label, path = parse_run_arg(arg)
        if not (path / "results.json").is_file():
            raise FileNotFoundError(
                f"{path / 'results.json'}: missing; {path} is not a closed-loop run folder"
            )
        runs.append(load_run(path, label))
    comparison = compare_runs(runs, reference, pairs)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "comparison.json", comparison)
    atomic_write_text(out_dir / "comparison.md", render_markdown(comparison))
    return comparison
