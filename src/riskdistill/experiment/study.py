"""The study merge: finished experiment parts (seeds, or variants of a seed) -> the committed result folder.

    riskdistill experiment --preset study --seeds 0 --out runs/study-s0      # one machine per seed
    riskdistill experiment --preset study --seeds 1 --out runs/study-s1
    riskdistill experiment merge runs/study-s0 runs/study-s1 ... --out results/<study-name>

:func:`merge_study` checks that the parts belong to one study: the same configuration in every field but
``seeds`` (and ``workers`` / ``eval.rerun*``, which change no result), the same git commit (every
invocation of every part: ``run.json`` and ``run.before-*.json``) and the same closed-loop routes
(``study_suite.json``); anything else is refused, naming the field. Then it lists every expected cell
(seed x variant x rig, the seeds being the study's ``all_seeds``): a cell whose closed-loop stage did not
finish, or whose seed no part holds, is *missing*. Missing cells refuse the merge unless ``allow_missing``;
then they are listed in ``study.json`` and the README, and the statistics use only the seeds a
comparison's two variants both have (never an average over what is there). A route that crashed scored 0
in its cell and stays in.

A part may also be an earlier *result folder* (``results/<study-name>`` itself), so that seeds run in
different sessions add up without keeping the experiment folders (checkpoints, recordings) of the seeds
already merged::

    riskdistill experiment merge results/<study-name> runs/study-s1 --out results/<study-name>

Its seeds with results count as a part run at its git commit; a cell that an experiment folder also holds
is taken from the experiment folder (a rerun or a resumed part replaces the merged one). Its cells are
read back from ``routes/`` (with the nominal rig's path-risk series, for the lead times), its per-seed
training and open-loop summaries and its timings are kept as they were.

A seed may itself be split, by variant or by rig, when it does not fit one session: the parts then differ
in ``variants`` / ``eval.rig_shifts`` too (``--set variants=[baseline,rsd]``, then ``[corridor]``), the
study is their union, and each cell (seed x variant x rig) is taken from the one part that runs it (two
experiment folders running the same cell are refused). Every part records and labels the seed's data
again (deterministic for a fixed seed); ``study.json`` lists which part gave which variants and rigs.

The result folder (small JSON and Markdown, no checkpoints or images)::

    README.md                      what was run, how long it took, what it shows and what it does not;
                                   its "Interpretation" section is a person's and survives a new merge
    study.json                     parts (folder, seeds, commit), seeds, variants, rigs, pairs, missing cells
    config.json                    the resolved configuration (seeds = every merged seed)
    suite.json                     the closed-loop routes
    timings.json                   every part's stage timings
    comparison.json / .md          the statistics (evaluation/study_stats.py)
    diagnostics.json / .md         collisions and DS by scenario type, risk-to-infraction lead time, BEV
                                   gradient norms of the losses, the student's hazard recall on bench
    seeds/s<seed>.json             per-seed summaries: training, open loop, closed loop per rig
    routes/<variant>-s<seed>/<rig>.json   per-route outcomes
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.evaluation.risk_outcome import compact_path_risk
from riskdistill.evaluation.study_stats import (
    BOOTSTRAP_DRAWS,
    BOOTSTRAP_SEED,
    RouteOutcome,
    compute_study_statistics,
    render_study_markdown,
    route_outcome,
)
from riskdistill.experiment.config import ExperimentConfig
from riskdistill.experiment.pipeline import NOMINAL, STUDY_SUITE, run_commits, run_name
from riskdistill.io import atomic_write_json, atomic_write_text, load_json

#: Configuration fields the parts of one study may differ in (they change no result).
PART_FIELDS = ("seeds", "workers", "eval.rerun", "eval.rerun_every", "variants", "eval.rig_shifts")


class MergeError(ValueError):
    """The parts cannot be merged into one study (the message names why)."""


@dataclass
class StudyPart:
    """One experiment output folder (a part of the study)."""

    path: Path
    config: ExperimentConfig
    commits: list[str | None]
    suite: dict[str, Any] | None  # study_suite.json (None: the part never reached the closed loop)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: dict[str, Any] | None = None  # study.json when the part is an earlier result folder

    @classmethod
    def load(cls, path: str | Path) -> StudyPart:
        path = Path(path)
        cfg_path = path / "experiment.json"
        if not cfg_path.is_file() and (path / "study.json").is_file():
            return cls.load_result(path)
        if not cfg_path.is_file():
            raise MergeError(
                f"{path}: neither an experiment folder (no experiment.json) nor a study result folder "
                "(no study.json)"
            )
        config = ExperimentConfig.from_dict(load_json(cfg_path), source=str(cfg_path))
        commits = run_commits(path)
        suite = load_json(path / STUDY_SUITE) if (path / STUDY_SUITE).is_file() else None
        stages = {}
        for p in sorted((path / "stages").glob("*.json")):
            rec = load_json(p)
            if isinstance(rec, dict) and isinstance(rec.get("stage"), str):
                stages[rec["stage"]] = rec
        return cls(path, config, commits, suite, stages)

    @classmethod
    def load_result(cls, path: Path) -> StudyPart:
        """An earlier merge's result folder as a part holding its seeds with results."""
        study = load_json(path / "study.json")
        for f in ("config.json", "suite.json"):
            if not (path / f).is_file():
                raise MergeError(f"{path}: a study result folder without {f}")
        missing = [k for k in ("git_commit", "seeds", "seeds_with_results") if k not in study]
        if missing:
            raise MergeError(f"{path / 'study.json'}: field(s) {missing} missing")
        if not study["seeds_with_results"]:
            raise MergeError(f"{path}: holds no seed with results, nothing to merge from it")
        cfg = load_json(path / "config.json") | {
            "seeds": study["seeds_with_results"],
            "all_seeds": study["seeds"],
        }
        config = ExperimentConfig.from_dict(cfg, source=str(path / "config.json"))
        return cls(path, config, [study["git_commit"]], load_json(path / "suite.json"), result=study)

    @property
    def is_result(self) -> bool:
        return self.result is not None

    def runs(self, seed: int, variant: str, rig: str) -> bool:
        """Whether this part's configuration runs the cell (finished or not)."""
        c = self.config
        return seed in c.seeds and variant in c.variants and rig in c.rigs


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def check_parts(parts: list[StudyPart]) -> None:
    """Refuse parts of different studies, naming the differing field (see the module docstring)."""
    if not parts:
        raise MergeError("merge needs at least one experiment folder")
    first = parts[0]
    want = {k: v for k, v in _flat(first.config.to_dict()).items() if k not in PART_FIELDS}
    for p in parts:
        if len(set(p.commits)) > 1:
            raise MergeError(
                f"{p.path}: its runs used several git commits {sorted(map(str, set(p.commits)))}: field "
                "'git commit' differs inside the part; rerun it on one commit"
            )
    for p in parts[1:]:
        have = {k: v for k, v in _flat(p.config.to_dict()).items() if k not in PART_FIELDS}
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        if diff:
            k = diff[0]
            raise MergeError(
                f"cannot merge {p.path} with {first.path}: configuration field {k!r} differs "
                f"({have.get(k)!r} vs {want.get(k)!r}; all differing fields: {diff}); the parts of a study "
                f"differ only in {list(PART_FIELDS)}"
            )
        if p.commits[:1] != first.commits[:1]:
            raise MergeError(
                f"cannot merge {p.path} with {first.path}: field 'git commit' differs "
                f"({p.commits[0]} vs {first.commits[0]})"
            )
        if p.suite is not None and first.suite is not None and p.suite != first.suite:
            a = {r["route_id"]: r for r in first.suite["routes"]}
            b = {r["route_id"]: r for r in p.suite["routes"]}
            diff_routes = sorted(r for r in set(a) | set(b) if a.get(r) != b.get(r))
            raise MergeError(
                f"cannot merge {p.path} with {first.path}: field 'route suite' differs "
                f"({first.suite['name']!r}, {len(a)} routes vs {p.suite['name']!r}, {len(b)} routes; first "
                f"differing route: {diff_routes[:1]})"
            )
    for results in (False, True):  # a result folder yields a cell to an experiment folder, not to its kind
        owner: dict[tuple[int, str, str], Path] = {}
        for p in parts:
            if p.is_result != results:
                continue
            for key in _cells_of(p.config):
                if key in owner:
                    s, v, rig = key
                    what = f"seed {s}" if len(p.config.variants) > 1 else f"{v}-s{s}"
                    raise MergeError(
                        f"{what} is in two parts, {owner[key]} and {p.path} (both run {v}-s{s} {rig}): merge "
                        "each cell once"
                    )
                owner[key] = p.path


def _cells_of(cfg: ExperimentConfig) -> list[tuple[int, str, str]]:
    return [(s, v, rig) for s in cfg.seeds for v in cfg.variants for rig in cfg.rigs]


def _ordered_union(lists: list[list[str]]) -> list[str]:
    """Every item of ``lists`` once, in the order of the longest list, then of first appearance."""
    out: list[str] = []
    for items in sorted(lists, key=len, reverse=True):
        out += [x for x in items if x not in out]
    return out


def study_config(parts: list[StudyPart]) -> ExperimentConfig:
    """The whole study's configuration: the first part's, with every part's variants and rig shifts."""
    cfg = parts[0].config.to_dict()
    cfg["variants"] = _ordered_union([p.config.variants for p in parts])
    cfg["eval"] = cfg["eval"] | {"rig_shifts": _ordered_union([p.config.eval.rig_shifts for p in parts])}
    return ExperimentConfig.from_dict(cfg, source="the merged parts")


def cell_owners(parts: list[StudyPart]) -> dict[tuple[int, str, str], StudyPart]:
    """The part each cell ``(seed, variant, rig)`` is taken from: an experiment folder before an earlier
    result folder."""
    owners: dict[tuple[int, str, str], StudyPart] = {}
    for p in sorted(parts, key=lambda p: not p.is_result):  # result folders first, overwritten
        for key in _cells_of(p.config):
            owners[key] = p
    return owners


@dataclass
class Cell:
    """One variant x seed x rig of the study: its routes, or why it is missing."""

    variant: str
    seed: int
    rig: str
    outcomes: dict[str, RouteOutcome] | None = None
    docs: list[dict[str, Any]] = field(default_factory=list)  # the full route files (diagnostics)
    missing: str | None = None
    notes: list[str] = field(default_factory=list)


def _held_out(spec: dict[str, Any]) -> tuple[bool, bool]:
    from riskdistill.evaluation.generalisation import is_held_out
    from riskdistill.sim.suites import RouteSpec

    s = RouteSpec.model_validate(spec)
    return is_held_out(s, "heldout-layout"), is_held_out(s, "heldout-scenario")


def load_cell(
    part: StudyPart | None,
    variant: str,
    seed: int,
    rig: str,
    suite: dict[str, Any],
    seed_held: bool = False,
) -> Cell:
    """A cell from its part's folder; missing (with the reason) when its closed loop did not finish or no
    part runs it (``seed_held``: some part holds the seed, with other variants or rigs)."""
    cell = Cell(variant, seed, rig)
    name = run_name(variant, seed)
    if part is None:
        cell.missing = f"no part runs {name} on the {rig} rig" if seed_held else f"no part holds seed {seed}"
        return cell
    if part.result is not None:
        return _result_cell(part, cell)
    folder = part.path / "eval" / name / f"closed_loop-{rig}"
    if f"closed loop {name} {rig}" not in part.stages:
        n = len(list((folder / "routes").glob("*.json"))) if folder.is_dir() else 0
        trained = f"train {name}" in part.stages
        cell.missing = (
            f"closed loop not finished ({n} of {len(suite['routes'])} routes written)"
            if trained
            else "training did not finish"
        )
        return cell
    cell.outcomes = {}
    for spec in suite["routes"]:
        rid = spec["route_id"]
        f = folder / "routes" / f"{rid}.json"
        if not f.is_file():  # counts 0, as a missing route of a Bench2Drive suite
            cell.notes.append(f"route {rid}: no route file (scored 0)")
            continue
        doc = load_json(f)
        cell.docs.append(doc)
        cell.outcomes[rid] = route_outcome(doc, *_held_out(spec))
    return cell


def _result_cell(part: StudyPart, cell: Cell) -> Cell:
    """A cell read back from a result folder's ``routes/<variant>-s<seed>/<rig>.json``."""
    f = part.path / "routes" / run_name(cell.variant, cell.seed) / f"{cell.rig}.json"
    if not f.is_file():
        was = [
            m["reason"]
            for m in (part.result or {}).get("missing", [])
            if (m.get("variant"), m.get("seed"), m.get("rig")) == (cell.variant, cell.seed, cell.rig)
        ]
        cell.missing = was[0] if was else f"not in {part.path} (no {f.relative_to(part.path)})"
        return cell
    doc = load_json(f)
    try:
        cell.outcomes = {r["route_id"]: RouteOutcome.from_dict(r) for r in doc["routes"]}
        cell.docs = [
            {
                "route_id": r["route_id"],
                "route_completion_pct": r.get("route_completion_pct"),
                "error": r.get("error"),
                "path_risk": r.get("path_risk"),
                "events": [{"kind": k, "time_s": t} for k, t in r.get("events", [])],
            }
            for r in doc["routes"]
        ]
    except (KeyError, TypeError) as exc:
        raise MergeError(f"{f}: not a study route file ({type(exc).__name__}: {exc})") from exc
    cell.notes = list(doc.get("notes", []))
    return cell


# ------------------------------------------------------------------------------------------ diagnostics
def _routes_by_scenario(cells: list[Cell]) -> dict[str, dict[str, dict[str, list[RouteOutcome]]]]:
    """``{rig: {variant: {scenario: [route outcomes]}}}`` over the cells with results, pooled over seeds."""
    out: dict[str, Any] = {}
    for c in cells:
        if c.outcomes is None:
            continue
        table = out.setdefault(c.rig, {}).setdefault(c.variant, {})
        for o in c.outcomes.values():
            table.setdefault(o.scenario, []).append(o)
    return out


def collisions_by_scenario(cells: list[Cell]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{rig: {variant: {scenario: {"routes", "collisions", "routes_with_collision", "per_route"}}}}``,
    pooled over the seeds (a route counts once per seed)."""
    return {
        rig: {
            v: {
                sc: {
                    "routes": len(os),
                    "collisions": sum(o.collisions for o in os),
                    "routes_with_collision": sum(int(o.collisions > 0) for o in os),
                    "per_route": sum(o.collisions for o in os) / len(os),
                }
                for sc, os in table.items()
            }
            for v, table in by_variant.items()
        }
        for rig, by_variant in _routes_by_scenario(cells).items()
    }


def scores_by_scenario(cells: list[Cell]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{rig: {variant: {scenario: {"routes", "driving_score", "success_rate"}}}}``: the mean DS and the
    success rate in % over a scenario type's routes, pooled over the seeds (where a difference comes from)."""
    return {
        rig: {
            v: {
                sc: {
                    "routes": len(os),
                    "driving_score": sum(o.driving_score for o in os) / len(os),
                    "success_rate": 100.0 * sum(o.success for o in os) / len(os),
                }
                for sc, os in sorted(table.items())
            }
            for v, table in by_variant.items()
        }
        for rig, by_variant in _routes_by_scenario(cells).items()
    }


def lead_times(cells: list[Cell]) -> dict[str, dict[str, Any]]:
    """Risk-to-infraction lead time of every variant that predicts risk, nominal rig, pooled over seeds
    (``evaluation.risk_outcome.summarise_risk_outcome`` without its per-event list)."""
    from riskdistill.evaluation.risk_outcome import summarise_risk_outcome

    docs: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        if c.rig == NOMINAL and c.outcomes is not None:
            docs.setdefault(c.variant, []).extend(c.docs)
    out = {}
    for variant, ds in docs.items():
        summary = summarise_risk_outcome(ds)
        if summary["n_routes_with_risk"]:
            out[variant] = {k: v for k, v in summary.items() if k != "events"}
    return out


def bev_grad_summary(run_dir: Path) -> dict[str, float] | None:
    """The mean of every ``bev_grad_*`` (and ``lifted_grad_*``) column over a training run's ``bev_grad``
    rows (``metrics.csv``), and ``risk_over_planning`` (the ratio of the means; ``lifted_risk_over_planning``
    at the BEV encoder's input, for a RiskHead attached there); None without rows."""
    from riskdistill.training.logger import read_metrics

    if not (run_dir / "metrics.csv").is_file():
        return None
    rows = [r for r in read_metrics(run_dir) if r.get("split") == "bev_grad"]
    if not rows:
        return None
    keys = sorted({k for r in rows for k in r if k.startswith(("bev_grad_", "lifted_grad_"))})
    out = {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
    if out.get("bev_grad_planning") and "bev_grad_risk" in out:
        out["risk_over_planning"] = out["bev_grad_risk"] / out["bev_grad_planning"]
    if out.get("lifted_grad_planning") and "lifted_grad_risk" in out:
        out["lifted_risk_over_planning"] = out["lifted_grad_risk"] / out["lifted_grad_planning"]
    out["rows"] = len(rows)
    return out


OPEN_LOOP_KEYS = (
    "l2_1s", "l2_2s", "l2_3s", "collision_rate_pct_2s", "risk_l1", "risk_auc", "risk_pearson",
    "risk_hazard_recall", "risk_hazards",
)  # fmt: skip


def seed_summary(
    owners: dict[str, StudyPart | None], seed: int, variants: list[str], cells: list[Cell]
) -> dict:
    """What one seed produced, per variant: training (steps, last losses, validation), BEV gradient norms,
    open-loop metrics (with the student's hazard recall), from the part that trained the variant
    (``owners``; a result folder's kept summary), and the closed-loop numbers per rig from the cells."""
    out: dict[str, Any] = {"seed": seed, "variants": {}}
    kept_summaries: dict[Path, dict[str, Any]] = {}  # a result folder's seeds/s<seed>.json, read once
    for variant in variants:
        name = run_name(variant, seed)
        v: dict[str, Any] = {}
        part = owners.get(variant)
        if part is not None and part.is_result:
            if part.path not in kept_summaries:
                kept_summaries[part.path] = _kept_seed_summary(part, seed)
            kept = kept_summaries[part.path]["variants"].get(variant, {})
            v = {k: kept[k] for k in ("train", "bev_grad", "open_loop") if k in kept}
            part = None
        rec = part.stages.get(f"train {name}") if part is not None else None
        if rec is not None:
            o = rec["outputs"]
            v["train"] = {k: o.get(k) for k in ("steps", "train_losses", "val_metrics")}
            v["bev_grad"] = bev_grad_summary(part.path / "train" / name)
        ol = part.path / "eval" / name / "open_loop.json" if part is not None else None
        if ol is not None and ol.is_file():
            m = load_json(ol).get("metrics", {})
            v["open_loop"] = {k: m.get(k) for k in OPEN_LOOP_KEYS if k in m}
        v["closed_loop"] = {}
        for c in cells:
            if c.variant != variant or c.seed != seed:
                continue
            if c.outcomes is None:
                v["closed_loop"][c.rig] = {"missing": c.missing}
                continue
            outs = list(c.outcomes.values())
            n = len(outs) + sum("no route file" in x for x in c.notes)  # a missing route file scores 0
            km = max(sum(o.km_driven for o in outs), 0.001)
            v["closed_loop"][c.rig] = {
                "n_routes": n,
                "driving_score": sum(o.driving_score for o in outs) / n,
                "success_rate": 100.0 * sum(o.success for o in outs) / n,
                "collisions_per_km": sum(o.collisions for o in outs) / km,
                "crashed_routes": sorted(o.route_id for o in outs if o.crashed),
                "notes": c.notes,
            }
        out["variants"][variant] = v
    return out


def render_diagnostics_markdown(diag: dict[str, Any], variants: list[str]) -> str:
    """The diagnostics as Markdown tables (collisions and DS by scenario on the nominal rig, lead times, BEV
    gradient norms and hazard recall per variant and seed)."""
    lines = ["## Collisions by scenario type (nominal rig, per route and seed)", ""]
    coll = diag["collisions_by_scenario"].get(NOMINAL, {})
    present = [v for v in variants if v in coll]
    if present:
        lines += ["| scenario | " + " | ".join(present) + " |", "|---|" + "---|" * len(present)]
        scenarios = sorted({s for v in present for s in coll[v]})
        for s in scenarios:
            cells = [f"{coll[v][s]['per_route']:.2f}" if s in coll[v] else "-" for v in present]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "## Driving score by scenario type (nominal rig, mean over routes and seeds)", ""]
    ds = diag.get("scores_by_scenario", {}).get(NOMINAL, {})
    present = [v for v in variants if v in ds]
    if present:
        lines += ["| scenario | routes | " + " | ".join(present) + " |", "|---|---|" + "---|" * len(present)]
        for s in sorted({s for v in present for s in ds[v]}):
            n = max(ds[v][s]["routes"] for v in present if s in ds[v])
            cells = [f"{ds[v][s]['driving_score']:.1f}" if s in ds[v] else "-" for v in present]
            lines.append(f"| {s} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "## Risk to infraction (nominal rig, collisions, pooled over seeds)", ""]
    lines += ["| variant | events | detected | lead time mean s | warning AUC |", "|---|---|---|---|---|"]
    for v, d in diag["lead_time"].items():
        det = "-" if d["detection_rate"] is None else f"{d['detection_rate']:.2f}"
        lead = "-" if d["lead_time_mean_s"] is None else f"{d['lead_time_mean_s']:.2f}"
        auc = "-" if d["warning_auc"] is None else f"{d['warning_auc']:.3f}"
        lines.append(f"| {v} | {d['n_events']} | {det} | {lead} | {auc} |")
    lines += ["", "## Training and open loop per seed", ""]
    lines += [
        "| variant | seed | BEV grad risk | BEV grad planning | risk / planning | hazard recall | risk AUC |",
        "|---|---|---|---|---|---|---|",
    ]

    def f(x: Any, k: int = 3) -> str:
        return "-" if x is None else f"{x:.{k}g}"

    for row in diag["per_seed"]:
        g = row.get("bev_grad") or {}
        ol = row.get("open_loop") or {}
        lines.append(
            f"| {row['variant']} | {row['seed']} | {f(g.get('bev_grad_risk'))} | "
            f"{f(g.get('bev_grad_planning'))} | {f(g.get('risk_over_planning'))} | "
            f"{f(ol.get('risk_hazard_recall'))} | {f(ol.get('risk_auc'))} |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ merge
@dataclass
class StudyResult:
    out_dir: Path
    statistics: dict[str, Any]
    missing: list[dict[str, Any]]
    study: dict[str, Any]


def _kept_seed_summary(part: StudyPart, seed: int) -> dict[str, Any]:
    f = part.path / "seeds" / f"s{seed}.json"
    if not f.is_file():
        raise MergeError(f"{part.path}: seed {seed} has results but no {f.relative_to(part.path)}")
    return load_json(f)


def _part_entries(
    part: StudyPart, owners: dict[tuple[int, str, str], StudyPart], cfg: ExperimentConfig
) -> list[dict[str, Any]]:
    """``study.json``'s ``parts`` entries a part contributes (a result folder: its own earlier parts), with
    the variants and rigs it gave when it gave only some of the study's."""
    mine = {key for key, p in owners.items() if p is part}
    if not mine:
        return []

    def entry(path: str, cells: set[tuple[int, str, str]]) -> dict[str, Any]:
        e: dict[str, Any] = {"path": path, "seeds": sorted({s for s, _, _ in cells})}
        variants = [v for v in cfg.variants if any(k[1] == v for k in cells)]
        rigs = [r for r in cfg.rigs if any(k[2] == r for k in cells)]
        if variants != cfg.variants:
            e["variants"] = variants
        if rigs != cfg.rigs:
            e["rigs"] = rigs
        return e

    if not part.is_result:
        return [entry(str(part.path), mine)]
    # an earlier part listed by a result folder stays listed for the cells still taken from it (a part
    # merged again, or rerun, takes its cells back and is listed once, as itself)
    out: list[dict[str, Any]] = []
    for q in (part.result or {}).get("parts", []):
        cells = {
            (s, v, r)
            for s in q.get("seeds", [])
            for v in q.get("variants", cfg.variants)
            for r in q.get("rigs", cfg.rigs)
        }
        if (kept := cells & mine) and (e := entry(q["path"], kept)) not in out:
            out.append(e)
    return out


def _variant_owner(
    owners: dict[tuple[int, str, str], StudyPart], seed: int, variant: str, rigs: list[str]
) -> StudyPart | None:
    """The part a seed's variant was trained in: the owner of its first rig's cell that has one."""
    return next((owners[seed, variant, r] for r in rigs if (seed, variant, r) in owners), None)


def _stage_kind(name: str) -> str:
    for kind in ("record", "label", "train", "open loop", "closed loop", "compare", "report"):
        if name.startswith(kind):
            return kind
    return "other"


def part_timings(part: StudyPart) -> dict[str, Any]:
    stages = {n: float(r.get("seconds", 0.0)) for n, r in part.stages.items()}
    by_kind: dict[str, float] = {}
    for n, sec in stages.items():
        by_kind[_stage_kind(n)] = by_kind.get(_stage_kind(n), 0.0) + sec
    # stages taken over from another part's folder (experiment/reuse.py): 0 s here, their time counted there
    reused = sorted(n for n, r in part.stages.items() if "reused_from" in r)
    return {
        "seeds": part.config.seeds,
        "total_s": sum(stages.values()),
        "by_kind_s": by_kind,
        "stages": stages,
        "reused_kinds": sorted(
            {_stage_kind(n) for n in reused} - {_stage_kind(n) for n in stages if n not in reused}
        ),
    }


def merge_study(
    part_dirs: list[str | Path],
    out_dir: str | Path,
    allow_missing: bool = False,
    name: str | None = None,
    draws: int = BOOTSTRAP_DRAWS,
) -> StudyResult:
    """Merge finished parts into the result folder (see the module docstring); :class:`MergeError` when
    they do not belong together or when cells are missing and ``allow_missing`` is False."""
    from riskdistill.experiment.study_readme import (
        describe_missing,
        render_study_readme,
        written_interpretation,
    )

    parts = [StudyPart.load(p) for p in part_dirs]
    check_parts(parts)
    cfg = study_config(parts)
    suites = [p.suite for p in parts if p.suite is not None]
    if not suites:
        raise MergeError(
            f"no part reached the closed loop ({STUDY_SUITE} missing in {[str(p) for p in part_dirs]})"
        )
    suite = suites[0]
    owners = cell_owners(parts)
    seeds = sorted({s for p in parts for s in p.config.study_seeds})
    held = {s for s, _, _ in owners}
    cells = [
        load_cell(owners.get((s, v, rig)), v, s, rig, suite, s in held)
        for s in seeds
        for v in cfg.variants
        for rig in cfg.rigs
    ]
    missing = [
        {"variant": c.variant, "seed": c.seed, "rig": c.rig, "reason": c.missing} for c in cells if c.missing
    ]
    if missing and not allow_missing:
        items = describe_missing(missing, cfg.rigs)
        listed = "; ".join(items[:8])
        more = f" (and {len(items) - 8} more)" if len(items) > 8 else ""
        raise MergeError(
            f"{len(missing)} missing part(s) of the study: {listed}{more}. Run or resume them, or merge with "
            "--allow-missing (the missing parts are then listed in the results, never averaged over)"
        )
    present = {(c.variant, c.seed, c.rig): c.outcomes for c in cells if c.outcomes is not None}
    route_ids = [r["route_id"] for r in suite["routes"]]
    selections = {"all": route_ids}
    flags = {r["route_id"]: _held_out(r) for r in suite["routes"]}
    for k, sel in ((0, "heldout-layout"), (1, "heldout-scenario")):
        ids = [r for r in route_ids if flags[r][k]]
        if ids:
            selections[sel] = ids
    statistics = compute_study_statistics(
        present, route_ids, cfg.pairs, cfg.rigs, selections, draws=draws, seed=BOOTSTRAP_SEED
    )
    per_seed_summaries = {
        s: seed_summary(
            {v: _variant_owner(owners, s, v, cfg.rigs) for v in cfg.variants},
            s,
            cfg.variants,
            [c for c in cells if c.seed == s],
        )
        for s in seeds
    }
    diagnostics = {
        "collisions_by_scenario": collisions_by_scenario(cells),
        "scores_by_scenario": scores_by_scenario(cells),
        "lead_time": lead_times(cells),
        "per_seed": [
            {
                "variant": v,
                "seed": s,
                "bev_grad": per_seed_summaries[s]["variants"][v].get("bev_grad"),
                "open_loop": per_seed_summaries[s]["variants"][v].get("open_loop"),
            }
            for s in seeds
            for v in cfg.variants
        ],
    }

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged_cfg = cfg.to_dict() | {"seeds": seeds, "all_seeds": None}  # the whole study, however it was split
    suite_hash = hashlib.sha256(json.dumps(suite, sort_keys=True).encode()).hexdigest()[:16]
    study = {
        "name": name or out.name,
        "experiment": cfg.name,
        "git_commit": parts[0].commits[0] if parts[0].commits else None,
        "parts": [q for p in parts for q in _part_entries(p, owners, cfg)],
        "seeds": seeds,
        "seeds_with_results": sorted({c.seed for c in cells if c.outcomes is not None}),
        "variants": cfg.variants,
        "rigs": cfg.rigs,
        "pairs": [list(p) for p in cfg.pairs],
        "suite": {"name": suite["name"], "n_routes": len(route_ids), "sha256": suite_hash},
        "selections": {k: len(v) for k, v in selections.items()},
        "missing": missing,
        "crashed_routes": sum(o.crashed for c in cells if c.outcomes for o in c.outcomes.values()),
    }
    timings: dict[str, Any] = {}
    for p in parts:
        if p.is_result:
            kept = load_json(p.path / "timings.json") if (p.path / "timings.json").is_file() else {}
            used = {q["path"] for q in _part_entries(p, owners, cfg)}
            timings.update({k: v for k, v in kept.items() if k in used})
        elif any(o is p for o in owners.values()):
            timings[str(p.path)] = part_timings(p)
    atomic_write_json(out / "study.json", study)
    atomic_write_json(out / "config.json", merged_cfg)
    atomic_write_json(out / "suite.json", suite)
    atomic_write_json(out / "timings.json", timings)
    atomic_write_json(out / "comparison.json", statistics)
    atomic_write_text(out / "comparison.md", render_study_markdown(statistics))
    atomic_write_json(out / "diagnostics.json", diagnostics)
    atomic_write_text(out / "diagnostics.md", render_diagnostics_markdown(diagnostics, cfg.variants))
    for s, summ in per_seed_summaries.items():
        atomic_write_json(out / "seeds" / f"s{s}.json", summ)
    for c in cells:
        if c.outcomes is None:
            continue
        routes = []
        for d in c.docs:
            o = c.outcomes[d["route_id"]].to_dict()
            o["route_completion_pct"] = d.get("route_completion_pct")
            o["events"] = [[e["kind"], e["time_s"]] for e in d.get("events", [])]
            o["error"] = d.get("error")
            if c.rig == NOMINAL and d.get("path_risk"):  # for the lead times of a later merge
                o["path_risk"] = compact_path_risk(d["path_risk"])
            routes.append(o)
        atomic_write_json(
            out / "routes" / run_name(c.variant, c.seed) / f"{c.rig}.json",
            {"variant": c.variant, "seed": c.seed, "rig": c.rig, "notes": c.notes, "routes": routes},
        )
    readme = out / "README.md"
    kept = written_interpretation(readme.read_text()) if readme.is_file() else None
    atomic_write_text(readme, render_study_readme(study, merged_cfg, statistics, diagnostics, timings, kept))
    return StudyResult(out, statistics, missing, study)
