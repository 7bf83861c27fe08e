"""The RSD study as one resumable pipeline: record -> label -> train -> evaluate -> compare -> report.

``run_experiment(cfg, out_dir)`` lays its outputs out as::

    out_dir/experiment.json                 the resolved ExperimentConfig (a resume refuses a different one)
    out_dir/run.json, log.txt               run directory (git commit, package versions, seeds)
    out_dir/stages/<stage>.json             finished stages (outputs + seconds): resume skips them
    out_dir/data/train, data/bench          recorded data sets (expert demonstrations + cameras)
    out_dir/data/*/labels/risk              teacher labels: records/, maps/, label_card.{json,md}
    out_dir/train/<variant>-s<seed>/        training runs (checkpoints/final is evaluated)
    out_dir/eval/<variant>-s<seed>/open_loop.json
    out_dir/eval/<variant>-s<seed>/closed_loop-<rig>/   Bench2Drive-style results per rig, with
                                            risk_outcome.json when the student predicts risk
    out_dir/compare/                        comparison table with confidence intervals and paired tests
    out_dir/report/index.html               the self-contained HTML report

Every variant (baseline / RSD / control) of a seed trains with the same data order, budget and seed; they
differ only in the RiskHead and its targets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from riskdistill.experiment.config import RISK_TARGETS, ExperimentConfig
from riskdistill.experiment.stages import StageRunner
from riskdistill.io import atomic_write_json, load_json_object
from riskdistill.sim.suites import Suite, load_suite

log = logging.getLogger(__name__)

NOMINAL = "nominal"


@dataclass
class ExperimentResult:
    out_dir: Path
    stages: StageRunner
    summaries: dict[str, dict[str, Any]]  # "<variant>-s<seed>/<rig>" -> closed-loop summary
    open_loop: dict[str, dict[str, Any]]  # "<variant>-s<seed>" -> open-loop metrics
    report: Path | None


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def bench_subset(per_type: int) -> Suite:
    """The first ``per_type`` bench routes of every scenario type (held-out types and layouts included)."""
    bench = load_suite("bench")
    counts: dict[str, int] = {}
    routes = []
    for r in bench.routes:
        if counts.get(r.scenario, 0) < per_type:
            counts[r.scenario] = counts.get(r.scenario, 0) + 1
            routes.append(r)
    return Suite(
        name=f"bench-{per_type}pt", description=f"{per_type} bench route(s) per scenario type", routes=routes
    )


def check_resume(cfg: ExperimentConfig, out_dir: Path) -> None:
    """Write ``experiment.json``, or check that an existing one holds the same configuration."""
    path = out_dir / "experiment.json"
    want = cfg.to_dict()
    if path.exists():
        # resolved through the current defaults, so a folder written before a key was added still resumes
        have = ExperimentConfig.from_dict(
            load_json_object(path, ValueError, "an experiment configuration"), source=str(path)
        ).to_dict()
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise ValueError(
                f"{path}: this folder holds an experiment with another configuration (differs in {diff}); "
                "use a new --out folder or the same configuration"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, want)


class Pipeline:
    """The stages of :func:`run_experiment`; each method is one stage (or a family of them)."""

    def __init__(self, cfg: ExperimentConfig, out_dir: Path, console: Console, show_progress: bool = True):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.console = console
        self.show_progress = show_progress
        self.stages = StageRunner(self.out, console)
        self.data_dir = self.out / "data"

    # ------------------------------------------------------------------------------------------ data
    def bench_suite(self) -> Suite:
        """The recorded bench routes (also the pool the closed-loop routes are spread over)."""
        d = self.cfg.data
        suite = bench_subset(d.bench_routes_per_type)
        return suite.spread(d.bench_max_routes) if d.bench_max_routes else suite

    def record(self, split: str) -> dict[str, Any]:
        from riskdistill.data import record_suite, validate_dataset

        d = self.cfg.data
        suite = load_suite("train").spread(d.train_routes) if split == "train" else self.bench_suite()
        out = self.data_dir / split
        res = record_suite(
            suite,
            d.rig,
            out,
            image_hw=self.cfg.image_hw,
            every_n_steps=d.every_n_steps if split == "train" else d.bench_every_n_steps or d.every_n_steps,
            workers=self.cfg.workers,
            max_steps=d.max_steps,
            show_progress=self.show_progress,
            steer_noise=d.steer_noise if split == "train" else 0.0,
        )
        problems = validate_dataset(out)
        if problems:
            raise RuntimeError(f"recorded data set {out} is invalid: {problems[:5]}")
        self.console.print(f"recorded {res.n_frames} frames of {len(res.recorded)} {split} routes -> {out}")
        return {"path": str(out), "frames": res.n_frames, "routes": len(res.recorded)}

    def control_label_dir(self) -> Path | None:
        """The label folder of a control teacher's maps (``control_targets`` other than ``shuffled``)."""
        tp = self.cfg.train
        if "control" not in self.cfg.variants or tp.control_targets == "shuffled":
            return None
        return self.data_dir / "train" / "labels" / f"control-{tp.control_targets}"

    def label(self, split: str, control: bool = False) -> dict[str, Any]:
        """Label ``split`` with the study's teacher, or with the control teacher (``control``)."""
        from riskdistill.contracts.labels import default_label_dir
        from riskdistill.teacher.build import make_teacher
        from riskdistill.teacher.runner import label_dataset

        data = self.data_dir / split
        t = self.cfg.teacher
        kind, options = t.kind, t.options
        out = default_label_dir(data)
        if control:
            kind, options, out = self.cfg.train.control_targets, {}, self.control_label_dir()
        teacher = make_teacher(kind, options)
        res = label_dataset(
            data,
            out,
            teacher,
            grid=self.cfg.teacher_grid,
            workers=1,
            show_progress=self.show_progress,
            run_dir=False,
        )
        card = self._label_card(data, out)
        self.console.print(
            f"labelled {res.labelled} frames of {split} with the {kind} teacher "
            f"({res.frames_per_s:.0f} frames/s, {res.n_errors} errors) -> {out}"
        )
        return {"path": str(out), **{k: v for k, v in res.to_dict().items() if k != "out_dir"}, "card": card}

    @staticmethod
    def _label_card(data: Path, labels: Path) -> str:
        from riskdistill.teacher.card import build_label_card

        build_label_card(labels, data_root=data)
        return str(labels / "label_card.md")

    # -------------------------------------------------------------------------------------- training
    def train(self, variant: str, seed: int) -> dict[str, Any]:
        from riskdistill.training.config import load_train_config
        from riskdistill.training.engine import launch

        tp = self.cfg.train
        control_labels = self.control_label_dir() if variant == "control" else None
        mode = RISK_TARGETS.get(variant, "teacher" if control_labels else tp.control_targets)
        base = {
            "data": {
                "root": str(self.data_dir / "train"),
                **({"labels": str(control_labels)} if control_labels else {}),
                "batch_size": tp.batch_size,
                "num_workers": tp.num_workers,
                "image_hw": list(self.cfg.image_hw),
            },
            "model": {"preset": tp.preset, "image_hw": list(self.cfg.image_hw)},
            "risk_targets": mode,
            "max_steps": tp.max_steps,
            "seed": seed,
            "shuffle_seed": seed,
            "progress": self.show_progress,
        }
        cfg = load_train_config(None, tp.overrides, base=base)
        run_dir = self.out / "train" / run_name(variant, seed)
        result = launch(cfg, run_dir, resume=(run_dir / "checkpoints" / "latest.json").exists())
        if result.checkpoint is None or result.interrupted:
            raise RuntimeError(f"training {run_name(variant, seed)} did not finish (see {run_dir})")
        self.console.print(
            f"trained {run_name(variant, seed)}: {result.step} steps, {result.samples_per_s:.1f} samples/s, "
            f"losses {', '.join(f'{k} {v:.3f}' for k, v in result.train_losses.items())}"
        )
        return {
            "checkpoint": str(result.checkpoint),
            "steps": result.step,
            "samples_per_s": result.samples_per_s,
            "train_losses": result.train_losses,
            "val_metrics": result.val_metrics,
        }

    # ------------------------------------------------------------------------------------ evaluation
    def open_loop(self, name: str, checkpoint: str) -> dict[str, Any]:
        from riskdistill.evaluation.open_loop import evaluate_open_loop

        res = evaluate_open_loop(checkpoint, self.data_dir / "bench", show_progress=self.show_progress)
        path = self.out / "eval" / name / "open_loop.json"
        atomic_write_json(path, res)
        return {"path": str(path), "metrics": res["metrics"]}

    def closed_loop(
        self, variant_name: str, seed: int, checkpoint: str, rig_shift: str | None
    ) -> dict[str, Any]:
        from riskdistill.evaluation.closed_loop import evaluate_suite
        from riskdistill.evaluation.generalisation import EvalVariant
        from riskdistill.runs import write_run_json
        from riskdistill.viz.rerun_log import RerunRecording

        e = self.cfg.eval
        suite = self.bench_suite().spread(e.closed_loop_routes)
        variant = EvalVariant(
            rig_shift=rig_shift,
            route_timeout_s=None if e.max_route_steps is None else e.max_route_steps * 0.1,
        )
        out = self.out / "eval" / run_name(variant_name, seed) / f"closed_loop-{rig_shift or NOMINAL}"
        config = {"label": variant_name, "seed": seed, "driver": checkpoint, "suite": suite.name}
        write_run_json(out, "experiment closed-loop", {**config, "rig_shift": rig_shift})
        _, summary = evaluate_suite(
            suite,
            checkpoint,
            out,
            workers=self.cfg.workers,
            show_progress=self.show_progress,
            variant=variant,
            # a Rerun recording per route of the nominal rig (OUT/rerun/<route_id>.rrd), for inspection
            recorders=[RerunRecording(every=e.rerun_every)] if e.rerun and rig_shift is None else (),
        )
        return {"path": str(out), "summary": summary}

    def compare(self, run_dirs: list[str]) -> dict[str, Any]:
        """Nominal closed-loop runs compared (labels and seeds from each folder's ``run.json``)."""
        from riskdistill.evaluation.compare import write_comparison

        out = self.out / "compare"
        reference = "baseline" if "baseline" in self.cfg.variants else None
        write_comparison(run_dirs, out, reference=reference)
        return {"path": str(out / "comparison.json")}

    def report(
        self,
        closed: list[str],
        open_loop: list[str],
        compare: str | None,
        checkpoints: list[str],
        training: list[str] = (),
    ) -> dict:
        from riskdistill.contracts.labels import default_label_dir
        from riskdistill.viz.report import build_report
        from riskdistill.viz.report_data import ReportInputs

        inputs = ReportInputs.from_folders(
            closed_loop=closed,
            open_loop=open_loop,
            compare=compare,
            data=self.data_dir / "bench",
            labels=default_label_dir(self.data_dir / "bench"),
            checkpoints=checkpoints,
            training=list(training),
            title=f"riskdistill experiment {self.cfg.name!r}",
        )
        path = build_report(inputs, self.out / "report")
        return {"path": str(path)}

    # ------------------------------------------------------------------------------------ the study
    def run(self) -> ExperimentResult:
        s = self.stages
        for split in ("train", "bench"):
            s.run(f"record {split}", lambda split=split: self.record(split))
        for split in ("train", "bench"):
            s.run(f"label {split}", lambda split=split: self.label(split))
        if self.control_label_dir() is not None:
            s.run("label train control", lambda: self.label("train", control=True))

        runs = [(variant, seed) for seed in self.cfg.seeds for variant in self.cfg.variants]
        ckpts: dict[tuple[str, int], str] = {}
        for variant, seed in runs:
            ckpts[variant, seed] = s.run(
                f"train {run_name(variant, seed)}", lambda v=variant, sd=seed: self.train(v, sd)
            )["checkpoint"]

        open_loop: dict[str, dict[str, Any]] = {}
        summaries: dict[str, dict[str, Any]] = {}
        closed_specs: list[str] = []
        nominal_runs: list[str] = []
        open_specs: list[str] = []
        for variant, seed in runs:
            name, ckpt = run_name(variant, seed), ckpts[variant, seed]
            ol = s.run(f"open loop {name}", lambda n=name, c=ckpt: self.open_loop(n, c))
            open_loop[name] = ol["metrics"]
            open_specs.append(f"{name}={ol['path']}")
            for shift in [None, *self.cfg.eval.rig_shifts]:
                cond = shift or NOMINAL
                cl = s.run(
                    f"closed loop {name} {cond}",
                    lambda v=variant, sd=seed, c=ckpt, sh=shift: self.closed_loop(v, sd, c, sh),
                )
                summaries[f"{name}/{cond}"] = cl["summary"]
                closed_specs.append(f"{variant}:{cond}={cl['path']}")
                if shift is None:
                    nominal_runs.append(cl["path"])

        compare = None
        if len(self.cfg.variants) > 1:
            compare = s.run("compare", lambda: self.compare(nominal_runs))["path"]
        report_ckpts = [ckpts[v, self.cfg.seeds[0]] for v in self.cfg.variants]
        train_dirs = [str(self.out / "train" / run_name(v, sd)) for v, sd in runs]
        report = s.run(
            "report", lambda: self.report(closed_specs, open_specs, compare, report_ckpts, train_dirs)
        )["path"]
        return ExperimentResult(self.out, s, summaries, open_loop, Path(report))


def run_experiment(
    cfg: ExperimentConfig, out_dir: str | Path, console: Console | None = None, show_progress: bool = True
) -> ExperimentResult:
    """Run (or resume) the whole study in ``out_dir``; see the module docstring for the layout."""
    from riskdistill.runs import create_run_dir

    out_dir = Path(out_dir)
    check_resume(cfg, out_dir)
    create_run_dir(
        out_dir, "experiment", cfg.to_dict(), seeds={f"seed{i}": s for i, s in enumerate(cfg.seeds)}
    )
    return Pipeline(cfg, out_dir, console or Console(), show_progress).run()
