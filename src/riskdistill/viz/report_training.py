"""Training curves for the report, read from the runs' ``metrics.csv`` (``riskdistill.training.logger``).

    runs = [load_training_run("runs/base-s0"), load_training_run("rsd=runs/rsd_run")]
    html = training_section(runs)     # loss curves (train) and validation metrics, one line per run

A spec is ``LABEL=DIR`` or ``DIR`` (the label and seed from the folder name, ``baseline-s0``, or from
``run.json``'s ``config.label`` / ``config.seed`` when the experiment wrote them). The curves are drawn
with matplotlib (Agg) into PNG bytes; nothing is written to disk here.
"""

from __future__ import annotations

from collections.abc import Sequence

from riskdistill.viz.report_data import TrainingRun, load_training_run
from riskdistill.viz.report_figures import PALETTE, _fig_png, _figure
from riskdistill.viz.report_html import esc, fmt, img_tag, note, table

__all__ = ["TrainingRun", "load_training_run", "plot_training_curves", "training_section"]
#: train-split columns drawn first, in this order (others with a ``loss_`` prefix follow)
TRAIN_CURVES: tuple[str, ...] = ("loss_total", "loss_planning", "loss_risk", "loss_occupancy")
MAX_PANELS = 6


def _panels(runs: Sequence[TrainingRun], split: str) -> list[str]:
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r.keys(split) if k not in keys]
    if split == "train":
        first = [k for k in TRAIN_CURVES if k in keys]
        rest = [k for k in keys if k.startswith("loss_") and k not in first]
        keys = first + rest + (["lr"] if "lr" in keys else [])
    return keys[:MAX_PANELS]


def plot_training_curves(runs: Sequence[TrainingRun], split: str = "train") -> bytes | None:
    """Small multiples: one panel per metric of ``split`` (train losses, or the validation metrics), one
    line per run (the same colour for the seeds of a label, a marker per validation point). None when the
    runs logged nothing for ``split``."""
    import numpy as np

    keys = _panels(runs, split)
    if not keys:
        return None
    cols = min(3, len(keys))
    rows = int(np.ceil(len(keys) / cols))
    fig = _figure(3.6 * cols + 1.6, 2.5 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
    labels = list(dict.fromkeys(r.label for r in runs))
    styles = ("-", "--", ":", "-.")
    for ax, key in zip(axes, keys, strict=False):
        for r in runs:
            x, y = r.series(split, key)
            if not x:
                continue
            k = [q for q in runs if q.label == r.label].index(r)
            ax.plot(
                x, y, styles[k % len(styles)], color=PALETTE[labels.index(r.label) % len(PALETTE)],
                marker="o" if split == "val" else None, markersize=3, linewidth=1.2, label=r.display,
            )  # fmt: skip
        ax.set_title(key.replace("_", " "), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if key.startswith("loss_") and all(v > 0 for r in runs for v in r.series(split, key)[1]):
            ax.set_yscale("log")
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside right upper", fontsize=8)
    return _fig_png(fig)


def training_section(runs: Sequence[TrainingRun]) -> str:
    """The report's training section: a table of the runs (steps, last losses) and the curves."""
    rows = []
    for r in runs:
        steps, total = r.series("train", "loss_total")
        val_keys = r.keys("val")
        rows.append(
            [esc(r.display), esc(r.path.name), str(steps[-1] if steps else 0),
             fmt(total[-1] if total else None, 4), esc(", ".join(val_keys[:6]) or "none")]
        )  # fmt: skip
    parts = [
        '<p class="muted">From each run\'s <code>metrics.csv</code> (the same scalars are in its '
        "<code>tensorboard/</code> folder when TensorBoard is installed). Losses on a log scale.</p>",
        table(
            ["run", "folder", "steps", "last train loss", "validation metrics"], rows, left_cols=2, left=(4,)
        ),
    ]
    for split, title in (("train", "Training losses"), ("val", "Validation metrics")):
        png = plot_training_curves(runs, split)
        if png is not None:
            parts.append(f"<h3>{title}</h3><figure>{img_tag(png, 'image/png', title, 'plot')}</figure>")
        elif split == "train":
            parts.append(note("the runs logged no training rows"))
    return "".join(parts)
