"""The generated ``README.md`` of a study result folder: what was run, how long it took, what the numbers
show and what they do not. Every number comes from the statistics; the interpretation is left to a person
(a marked section at the end)."""

from __future__ import annotations

from typing import Any

from riskdistill.experiment.pipeline import NOMINAL, run_name

INTERPRETATION_PLACEHOLDER = (
    "_To be written: what the numbers mean, what was tried if the effect is absent or negative (risk "
    "loss weight, risk-gated features, teacher quality, where the RiskHead attaches)._"
)
_SECTION = "## Interpretation\n"


def written_interpretation(readme: str) -> str | None:
    """The text a person wrote under "## Interpretation" in a study README (None: only the placeholder,
    or no such section), so that merging again after more seeds finish does not erase it."""
    start = readme.find(_SECTION)
    if start < 0:
        return None
    body = readme[start + len(_SECTION) :]
    end = body.find("\n## ")
    body = (body if end < 0 else body[:end]).strip()
    return None if not body or body == INTERPRETATION_PLACEHOLDER else body


_KINDS = ("record", "label", "train", "open loop", "closed loop", "compare", "report")


def _ci(m: dict[str, Any], digits: int = 1) -> str:
    return f"{m['diff']:+.{digits}f} [{m['ci_low']:+.{digits}f}, {m['ci_high']:+.{digits}f}]"


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def verdict(c: dict[str, Any], alpha: float = 0.05) -> str:
    """One sentence on a comparison's Driving Score difference, from its interval and Holm-adjusted test."""
    if "driving_score" not in c:
        return f"{c['a']} - {c['b']}: not compared (no seed has both variants)."
    ds = c["driving_score"]
    lo, hi, p = ds["ci_low"], ds["ci_high"], ds.get("wilcoxon_p_holm")
    head = f"{c['a']} - {c['b']}: DS {_ci(ds)}"
    if lo > 0 or hi < 0:
        side = "higher" if lo > 0 else "lower"
        if p is not None and p < alpha:
            return (
                f"{head}; {c['a']} scores {side}, and the Holm-adjusted Wilcoxon test agrees (p = {_p(p)})."
            )
        return (
            f"{head}; the interval excludes 0 ({c['a']} {side}), but the Holm-adjusted Wilcoxon test "
            f"does not (p = {_p(p)}): suggestive, not established."
        )
    bound = max(abs(lo), abs(hi))
    return (
        f"{head}; no detectable difference: the interval includes 0, so an effect of up to about "
        f"{bound:.1f} DS either way is not excluded (Holm-adjusted Wilcoxon p = {_p(p)})."
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _comparisons(statistics: dict[str, Any], rig: str, selection: str) -> list[dict[str, Any]]:
    return [c for c in statistics["comparisons"] if c["rig"] == rig and c["selection"] == selection]


def _table(rows: list[dict[str, Any]], first: str) -> list[str]:
    lines = [
        f"| {first} | seeds | DS diff [95 % CI] | Holm p (DS) | SR diff, points [95 % CI] | Holm p (SR) "
        "| collisions/km diff [95 % CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        label = c["_label"]
        if "driving_score" not in c:
            lines.append(f"| {label} | none | - | - | - | - | - |")
            continue
        ds, sr, ck = c["driving_score"], c["success_rate"], c["collisions_per_km"]
        lines.append(
            f"| {label} | {','.join(map(str, c['seeds']))} | {_ci(ds)} | {_p(ds['wilcoxon_p_holm'])} | "
            f"{_ci(sr)} | {_p(sr['mcnemar_p_holm'])} | {_ci(ck, 3)} |"
        )
    return lines


def _init_phrase(train: dict[str, Any]) -> str:
    """The phrase ", each fine-tuning `<weights>`" when the study's train overrides start every student from
    given weights; "" otherwise."""
    for o in train.get("overrides", []):
        key, _, value = o.partition("=")
        if key.strip() == "init_weights" and value.strip():
            return f", each fine-tuning `{value.strip()}`"
    return ""


def describe_missing(missing: list[dict[str, Any]], rigs: list[str]) -> list[str]:
    """``study.json``'s missing cells in words, for the merge's error and the README: a seed no part
    holds in one item, a run (variant and seed) no part runs on any rig in one item, other cells one by one
    with their reason."""
    lost = sorted({m["seed"] for m in missing if m["reason"] == f"no part holds seed {m['seed']}"})
    items = [f"seed {s}: no part holds it" for s in lost]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for m in missing:
        if m["seed"] not in lost:
            runs.setdefault((m["variant"], m["seed"]), []).append(m)
    for (variant, seed), cells in runs.items():
        name = run_name(variant, seed)
        unrun = all(m["reason"].startswith("no part runs") for m in cells)
        if unrun and {m["rig"] for m in cells} == set(rigs):
            items.append(f"{name}: no part runs it")
        else:
            items += [f"{name} {m['rig']}: {m['reason']}" for m in cells]
    return items


def _part_label(part: dict[str, Any]) -> str:
    """A ``study.json`` part in words: its seeds, and its variants and rigs where it ran only some."""
    label = f"seeds {part['seeds']}"
    for key in ("variants", "rigs"):
        if key in part:
            label += f", {key} {', '.join(part[key])}"
    return label


def render_study_readme(
    study: dict[str, Any],
    cfg: dict[str, Any],
    statistics: dict[str, Any],
    diagnostics: dict[str, Any],
    timings: dict[str, Any],
    interpretation: str | None = None,
) -> str:
    """The README skeleton (see the module docstring); ``interpretation`` (the text a person wrote under
    "## Interpretation" in an earlier merge, see :func:`written_interpretation`) is kept verbatim: it
    should name the seeds it was written for, and a person revises it when more seeds are merged."""
    t, d, e = cfg["train"], cfg["data"], cfg["eval"]
    sel = study["selections"]
    limit = "each scenario's own" if e["max_route_steps"] is None else f"{e['max_route_steps']} steps"
    pairs = ", ".join(f"{a} - {b}" for a, b in study["pairs"])
    labels = {p["path"]: _part_label(p) for p in study["parts"]}
    parts = "; ".join(labels.values())
    lines = [
        f"# {study['name']}: does risk distillation help?",
        "",
        "Generated by `riskdistill experiment merge` from the statistics in this folder; the interpretation "
        "at the end is written by a person.",
        "",
        "## What was run",
        "",
        f"- Code: git commit `{study['git_commit']}`; configuration: `config.json` (experiment "
        f"`{study['experiment']}`).",
        f"- Teacher: `{cfg['teacher']['kind']}`. Students: the `{t['preset']}` preset, {t['max_steps']} "
        f"steps of batch {t['batch_size']}{_init_phrase(t)}, on {d['train_routes']} training routes (every "
        f"{d['every_n_steps']}. step).",
        f"- Seeds {study['seeds']} x variants {study['variants']} x rigs {study['rigs']}, on "
        f"{study['suite']['n_routes']} closed-loop routes of `{study['suite']['name']}` "
        f"({sel.get('heldout-layout', 0)} on the held-out layout, {sel.get('heldout-scenario', 0)} of the "
        f"held-out scenario type); route time limit: {limit}.",
        f"- Comparisons (a - b): {pairs}.",
        f"- Parts: {parts}.",
        f"- Routes that crashed (scored 0, kept): {study['crashed_routes']}.",
    ]
    if study["missing"]:
        items = describe_missing(study["missing"], study["rigs"])
        lines.append(
            f"- **Missing ({len(study['missing'])} cells, not averaged over; comparisons use the seeds both "
            "variants have):** " + "; ".join(items)
        )
    else:
        lines.append("- Missing: nothing; every seed x variant x rig finished.")

    lines += ["", "## How long it took", "", "| part | " + " | ".join(_KINDS) + " | total h |"]
    lines.append("|---|" + "---|" * (len(_KINDS) + 1))
    total = 0.0
    for path, tm in timings.items():
        by = tm["by_kind_s"]
        total += tm["total_s"]
        reused = tm.get("reused_kinds", [])
        cells = ["reused" if k in reused else _duration(by.get(k, 0.0)) for k in _KINDS]
        lines.append(f"| {labels[path]} | " + " | ".join(cells) + f" | {tm['total_s'] / 3600:.2f} |")
    lines += [
        "",
        f"Machine time over all parts: {total / 3600:.2f} h (stage wall times as each part recorded them)."
        + (
            " `reused`: the part started from another part's recorded and labelled data "
            "(`riskdistill experiment reuse-data`), whose time is counted there."
            if any(tm.get("reused_kinds") for tm in timings.values())
            else ""
        ),
    ]

    main = _comparisons(statistics, NOMINAL, "all")
    lines += ["", "## What it shows", "", "Nominal rig, all routes (a - b: positive DS / SR favour a):", ""]
    lines += _table([{**c, "_label": f"{c['a']} - {c['b']}"} for c in main], "a - b")
    lines += [""] + [f"- {verdict(c)}" for c in main]
    for a, b in study["pairs"]:
        rows = [
            {**c, "_label": c["rig"]}
            for c in statistics["comparisons"]
            if c["a"] == a and c["b"] == b and c["selection"] == "all"
        ]
        lines += ["", f"{a} - {b} on every rig (all routes):", "", *_table(rows, "rig")]
        held = [
            {**c, "_label": c["selection"]}
            for c in statistics["comparisons"]
            if c["a"] == a and c["b"] == b and c["rig"] == NOMINAL and c["selection"] != "all"
        ]
        if held:
            lines += ["", f"{a} - {b}, nominal rig, held-out routes:", "", *_table(held, "routes")]

    lines += ["", "Diagnostics (`diagnostics.md`):", ""]
    for v, lt in diagnostics["lead_time"].items():
        det = "-" if lt["detection_rate"] is None else f"{lt['detection_rate']:.2f}"
        lead = "-" if lt["lead_time_mean_s"] is None else f"{lt['lead_time_mean_s']:.2f} s"
        lines.append(
            f"- {v}: {lt['n_events']} collisions on the nominal rig in {lt['n_routes_with_risk']} route runs "
            f"(routes x seeds); path risk above {lt['threshold']} "
            f"before them (detection rate) {det}, mean lead time {lead}."
        )
    by_v: dict[str, list[dict[str, Any]]] = {}
    for row in diagnostics["per_seed"]:
        by_v.setdefault(row["variant"], []).append(row)
    for v, rows in by_v.items():
        ratios = {
            r["seed"]: r["bev_grad"]["risk_over_planning"]
            for r in rows
            if (r.get("bev_grad") or {}).get("risk_over_planning")
        }
        recall = {
            r["seed"]: r["open_loop"]["risk_hazard_recall"]
            for r in rows
            if (r.get("open_loop") or {}).get("risk_hazard_recall") is not None
        }
        parts = []
        if ratios:
            parts.append(f"risk / planning gradient at the BEV {sum(ratios.values()) / len(ratios):.3g}")
        if recall:
            parts.append(f"hazard recall on bench {sum(recall.values()) / len(recall):.2f}")
        if parts:
            seeds = ", ".join(str(sd) for sd in sorted(ratios.keys() | recall.keys()))
            lines.append(f"- {v} (mean over seeds {seeds}): " + ", ".join(parts) + ".")

    lines += [
        "",
        "## What it does not show",
        "",
        "- Anything about CARLA or real data: the routes are the built-in simulator's Bench2Drive-named "
        "scenarios, driven by small CPU students.",
        f"- Anything about a VLM teacher unless the teacher above is `vlm` (here: "
        f"`{cfg['teacher']['kind']}`).",
        f"- Effects smaller than the intervals: with {len(study['seeds_with_results'])} seed(s) the "
        "seed-to-seed "
        "variation is estimated from very few values; the intervals resample seeds and routes "
        "(docs/experiment.md).",
        "- Independence it assumes: the McNemar test treats every (seed, route) pair as independent; the "
        "Wilcoxon test treats routes as independent units; Holm corrects within each route selection.",
        "- Why: the diagnostics (gradient share of the risk loss, hazard recall, lead times, collisions by "
        "scenario type) explain, they do not test.",
        "",
        "## Interpretation",
        "",
        interpretation.strip() if interpretation else INTERPRETATION_PLACEHOLDER,
        "",
        "## Files",
        "",
        "`study.json` (parts, seeds, missing cells), `config.json`, `suite.json`, `timings.json`, "
        "`comparison.json` / `comparison.md` (all statistics), `diagnostics.json` / `diagnostics.md`, "
        "`seeds/s<seed>.json` (per-seed summaries), `routes/<variant>-s<seed>/<rig>.json` (per-route "
        "outcomes).",
    ]
    return "\n".join(lines) + "\n"
