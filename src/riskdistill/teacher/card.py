"""The label card of a label folder: ``label_card.json`` + ``label_card.md`` + ``label_card_scores.png``.

    card = build_label_card("data/train/labels/risk", other_label_dir="data/train/labels/vlm")

Contents: coverage (frames with a record / frames of the data set), failures by kind (``errors/``),
score histograms (object risk, frame risk; objects per class), hazard recall per scenario type against
the scenarios' named hazard actors (``teacher.quality.hazard_recall``; data sets recorded with hazard
metadata), Diff_Risk (``teacher.quality``), agreement with a second teacher's folder when given (scale
and ranking: mean absolute score difference, rank correlation, top-1 agreement, map difference), and cost
from the runs' ``summary.json`` files (frames/s, GPU-seconds where the teacher reports them). NaN figures
(nothing to measure) are written as ``null`` in the JSON and "n/a" in the Markdown.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.contracts import labels
from riskdistill.io import atomic_path, atomic_write_json, atomic_write_text
from riskdistill.teacher.quality import agreement_between, compute_diff_risk, hazard_recall, load_labels

CARD_JSON = "label_card.json"
CARD_MD = "label_card.md"
CARD_PNG = "label_card_scores.png"
HIST_BINS = 10


def _clean(x: Any) -> Any:
    """NaN / inf -> None, recursively (strict JSON)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def _fmt(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _total_frames(label_dir: Path, data_root: Path | None) -> tuple[int | None, Path | None]:
    if data_root is None:
        p = label_dir / labels.LABELLING_JSON
        if p.is_file():
            root = json.loads(p.read_text()).get("data_root")
            data_root = Path(root) if root else None
    if data_root is None or not (data_root / "frames.parquet").is_file():
        return None, data_root
    import pyarrow.parquet as pq

    return pq.read_metadata(data_root / "frames.parquet").num_rows, data_root


def _failures(label_dir: Path) -> tuple[dict[str, int], list[dict[str, Any]]]:
    kinds: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    for p in sorted((label_dir / "errors").rglob("*.json")):
        try:
            e = json.loads(p.read_text())
        except (OSError, ValueError):
            kinds["unreadable_error_record"] += 1
            continue
        kinds[str(e.get("kind", "error"))] += 1
        if len(examples) < 5:
            examples.append({k: e.get(k) for k in ("frame_id", "kind", "message")})
    return dict(sorted(kinds.items())), examples


def _cost(label_dir: Path) -> dict[str, Any]:
    runs = []
    for p in sorted((label_dir / "runs").glob("*/summary.json")):
        try:
            runs.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    done = sum(
        r.get("labelled", 0) + r.get("rasterised", 0) + sum(r.get("errors", {}).values()) for r in runs
    )
    wall = sum(float(r.get("wall_s", 0.0)) for r in runs)
    gpu = [r["gpu_seconds"] for r in runs if r.get("gpu_seconds") is not None]
    labelled = sum(r.get("labelled", 0) for r in runs)
    return {
        "runs": len(runs),
        "frames_processed": done,
        "frames_labelled": labelled,
        "wall_s": wall,
        "frames_per_s": done / wall if wall > 0 else math.nan,
        "gpu_seconds": float(sum(gpu)) if gpu else None,
        "gpu_seconds_per_frame": float(sum(gpu)) / labelled if gpu and labelled else None,
    }


def build_label_card(
    label_dir: str | Path,
    data_root: str | Path | None = None,
    other_label_dir: str | Path | None = None,
    sample_dirs: Sequence[str | Path] = (),
    max_gap_steps: int | None = None,
    write: bool = True,
    hazards: bool = True,
) -> dict[str, Any]:
    """Compute the card of ``label_dir`` and (``write``) save it into that folder; returns the JSON dict.
    ``hazards``: compute hazard recall (reads every labelled frame's annotation; needs the data set)."""
    label_dir = Path(label_dir)
    labels = load_labels(label_dir)
    total, root = _total_frames(label_dir, Path(data_root) if data_root else None)
    kinds, examples = _failures(label_dir)
    risks = np.array([o.risk for lab in labels.values() for o in lab.objects])
    frame_risks = np.array([lab.frame_risk for lab in labels.values()])
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    teachers = Counter(lab.provenance.teacher for lab in labels.values())
    hashes = Counter(lab.provenance.config_hash for lab in labels.values())
    card: dict[str, Any] = {
        "label_dir": str(label_dir),
        "data_root": str(root) if root else None,
        "teachers": dict(teachers),
        "teacher_config_hashes": dict(hashes),
        "coverage": {
            "frames_total": total,
            "frames_labelled": len(labels),
            "fraction": len(labels) / total if total else None,
            "frames_failed": sum(kinds.values()),
        },
        "failures": {"by_kind": kinds, "examples": examples},
        "scores": {
            "objects": len(risks),
            "objects_per_frame": len(risks) / len(labels) if labels else None,
            "risk_mean": float(risks.mean()) if len(risks) else None,
            "risk_histogram": {
                "edges": edges.tolist(),
                "counts": np.histogram(risks, edges)[0].tolist(),
            },
            "frame_risk_mean": float(frame_risks.mean()) if len(frame_risks) else None,
            "frame_risk_histogram": {
                "edges": edges.tolist(),
                "counts": np.histogram(frame_risks, edges)[0].tolist(),
            },
            "objects_per_class": dict(
                sorted(Counter(o.cls for lab in labels.values() for o in lab.objects).items())
            ),
        },
        "hazard_recall": _hazard_recall(labels, root) if hazards else None,
        "diff_risk": compute_diff_risk(labels, [load_labels(d) for d in sample_dirs], max_gap_steps),
        "agreement": None,
        "cost": _cost(label_dir),
    }
    if other_label_dir is not None:
        card["agreement"] = {
            "other_label_dir": str(other_label_dir),
            **asdict(agreement_between(label_dir, other_label_dir)),
        }
    card = _clean(card)
    if write:
        atomic_write_json(label_dir / CARD_JSON, card)
        atomic_write_text(label_dir / CARD_MD, render_card_markdown(card))
        save_score_histogram(card, label_dir / CARD_PNG)
    return card


def _hazard_recall(labels: dict, root: Path | None) -> dict[str, Any] | None:
    """Hazard recall of the labels, or None without a data set or hazard metadata (older recordings)."""
    if root is None or not (root / "frames.parquet").is_file() or not labels:
        return None
    try:
        summary = hazard_recall(labels, root)
    except Exception as exc:  # an unreadable data set must not cost the rest of the card
        return {"error": f"{type(exc).__name__}: {exc}"}
    if summary["frames_without_metadata"] == summary["all"]["frames"]:
        return None
    return summary


def save_score_histogram(card: dict[str, Any], path: Path) -> Path:
    """PNG with the object-risk and frame-risk histograms of a card (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    for ax, key, title in (
        (axes[0], "risk_histogram", "object risk"),
        (axes[1], "frame_risk_histogram", "frame risk"),
    ):
        h = card["scores"][key]
        e = np.asarray(h["edges"])
        ax.bar(e[:-1], h["counts"], width=np.diff(e), align="edge", edgecolor="black", color="tab:red")
        ax.set_title(title)
        ax.set_xlabel("risk")
        ax.set_ylabel("count")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def render_card_markdown(card: dict[str, Any]) -> str:
    cov, sc, dr, cost = card["coverage"], card["scores"], card["diff_risk"], card["cost"]
    lines = [
        f"# Label card: `{card['label_dir']}`",
        "",
        f"Data set: `{card['data_root']}`; teachers: "
        + ", ".join(f"{k} ({v} frames)" for k, v in card["teachers"].items()),
        "",
        "## Coverage",
        "",
        "| frames total | labelled | fraction | failed |",
        "|---|---|---|---|",
        f"| {_fmt(cov['frames_total'])} | {cov['frames_labelled']} | {_fmt(cov['fraction'])} "
        f"| {cov['frames_failed']} |",
        "",
        "## Failures by kind",
        "",
    ]
    if card["failures"]["by_kind"]:
        lines += ["| kind | frames |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in card["failures"]["by_kind"].items()]
        lines += ["", "Examples:", ""]
        lines += [f"- `{e['frame_id']}` ({e['kind']}): {e['message']}" for e in card["failures"]["examples"]]
    else:
        lines.append("none")
    lines += [
        "",
        "## Scores",
        "",
        f"{sc['objects']} objects ({_fmt(sc['objects_per_frame'], 2)} per frame), mean risk "
        f"{_fmt(sc['risk_mean'])}, mean frame risk {_fmt(sc['frame_risk_mean'])}.",
        "",
        f"![score histograms]({CARD_PNG})",
        "",
        "| risk bin | objects | frames |",
        "|---|---|---|",
    ]
    e = sc["risk_histogram"]["edges"]
    for k, (a, b) in enumerate(
        zip(sc["risk_histogram"]["counts"], sc["frame_risk_histogram"]["counts"], strict=True)
    ):
        lines.append(f"| {e[k]:.1f}-{e[k + 1]:.1f} | {a} | {b} |")
    lines += [
        "",
        "Objects per class: " + ", ".join(f"{k} {v}" for k, v in sc["objects_per_class"].items()),
        "",
    ]
    lines += render_hazard_markdown(card.get("hazard_recall"))
    lines += [
        "## Diff_Risk (lower is better; definitions in docs/labelling.md)",
        "",
        "| part | value | support |",
        "|---|---|---|",
        f"| rank (discordant pair fraction) | {_fmt(dr['rank']['diff_risk'])} | {dr['rank']['pairs']} pairs, "
        f"{dr['rank']['ties']} ties, {dr['rank']['frames_from_reply']} of {dr['rank']['frames']} frames "
        "ranked by the raw reply |",
        f"| temporal (mean abs delta risk) | {_fmt(dr['temporal']['diff_risk'])} | "
        f"{dr['temporal']['pairs']} object pairs, {dr['temporal']['routes']} routes, "
        f"p95 {_fmt(dr['temporal']['p95_abs_delta'])} |",
    ]
    if "sample" in dr:
        s = dr["sample"]
        lines.append(
            f"| sample (mean std over samples) | {_fmt(s['diff_risk'])} | {s['objects']} objects, "
            f"{s['samples']} samples, max {_fmt(s['max_std'])} |"
        )
    lines += ["", "## Teacher agreement", ""]
    ag = card["agreement"]
    if ag:
        lines += [
            f"Against `{ag['other_label_dir']}` ({ag['shared_frames']} shared frames). Scale and ranking "
            "both count: a difference of 0 and correlations of 1 mean the same labels.",
            "",
            "| figure | value | frames |",
            "|---|---|---|",
            f"| mean abs. difference of object scores (objects either scored; missing = 0) "
            f"| {_fmt(ag['score_mad'])} | {ag['shared_frames']} |",
            f"| Spearman rank correlation (shared objects) | {_fmt(ag['rank_corr_mean'])} "
            f"| {ag['rank_frames']} |",
            f"| top-1 agreement (same top-ranked object) | {_fmt(ag['top1_agreement'])} "
            f"| {ag['top1_frames']} |",
            f"| mean abs. difference of BEV maps | {_fmt(ag['map_mad'], 4)} | {ag['map_frames']} |",
            f"| BEV map Pearson correlation (scale-free, for reference) | {_fmt(ag['map_corr_mean'])} "
            f"| {ag['map_frames']} |",
            f"| mean abs. difference of frame risks | {_fmt(ag['frame_risk_mad'])} | {ag['shared_frames']} |",
            f"| frame risk Pearson correlation | {_fmt(ag['frame_risk_corr'])} | {ag['shared_frames']} |",
        ]
    else:
        lines.append("no second label folder given")
    lines += [
        "",
        "## Cost",
        "",
        "| runs | frames processed | wall s | frames/s | GPU-seconds | GPU-s per frame |",
        "|---|---|---|---|---|---|",
        f"| {cost['runs']} | {cost['frames_processed']} | {_fmt(cost['wall_s'], 1)} | "
        f"{_fmt(cost['frames_per_s'], 1)} | {_fmt(cost['gpu_seconds'], 1)} | "
        f"{_fmt(cost['gpu_seconds_per_frame'], 3)} |",
        "",
    ]
    return "\n".join(lines)


def _pct(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.1f} %"


def render_hazard_markdown(hz: dict[str, Any] | None) -> list[str]:
    """The card's hazard-recall section (also printed by ``benchmarks/bench_hazard_recall.py``)."""
    lines = ["## Hazard recall (scenario ground truth; definitions in docs/labelling.md)", ""]
    if not hz:
        return [*lines, "not measured: no data set, or its annotations name no hazard actors", ""]
    if "error" in hz:
        return [*lines, f"not measured: {hz['error']}", ""]
    t = hz["thresholds"]
    lines += [
        f"A frame qualifies when a named hazard actor is within {t['max_distance_m']:.0f} m and its "
        f"counterfactual time to conflict is under {t['max_ttc_s']:.0f} s; it is a hit when that hazard is "
        f"above {t['min_risk']} and no other object ranks above it.",
        "",
        "| scenario type | frames | qualifying | hits | recall | mean hazard risk | non-hazard objects > "
        f"{t['min_risk']} |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [*hz["by_scenario"].items(), ("**all**", hz["all"])]
    for name, d in rows:
        recall = _pct(d["recall"]) if d.get("has_hazard", True) else "n/a (no hazard actor)"
        lines.append(
            f"| {name} | {d['frames']} | {d['qualifying']} | {d['hits']} | {recall} | "
            f"{_fmt(d['mean_hazard_risk'], 2)} | {d['non_hazard_high']} of {d['non_hazard']} "
            f"({_pct(d['non_hazard_high_share'])}) |"
        )
    lines += ["", f"Lowest recall over scenario types: {_pct(hz['min_recall_over_types'])}.", ""]
    return lines
