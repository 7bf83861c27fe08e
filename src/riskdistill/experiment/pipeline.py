"""The RSD study as one resumable pipeline: record -> label -> train -> evaluate -> compare -> report.

``run_experiment(cfg, out_dir)`` lays its outputs out as::

    out_dir/experiment.json                 the resolved ExperimentConfig (a resume refuses a different one)
    out_dir/run.json, log.txt               run directory (git commit, package versions, seeds); a resume
                                            with another commit keeps the earlier run.json as
                                            run.before-<utc>.json (the study merge refuses mixed commits)
    out_dir/study_suite.json                the closed-loop routes (the study merge compares them)
    out_dir/stages/<stage>.json             finished stages (outputs + seconds): resume skips them
    out_dir/data/train, data/bench          recorded data sets (expert demonstrations + cameras)
    out_dir/data/*/labels/risk              teacher labels: records/, maps/, label_card.{json,md}
    out_dir/data/train/labels/control-<kind>  a control teacher's labels (corridor: + label_stats.json)
    out_dir/train/<variant>-s<seed>/        training runs (checkpoints/final is evaluated)
    out_dir/eval/<variant>-s<seed>/open_loop.json
    out_dir/eval/<variant>-s<seed>/closed_loop-<rig>/   Bench2Drive-style results per rig, with
                                            risk_outcome.json when the student predicts risk
    out_dir/compare/                        comparison table with confidence intervals and paired tests
    out_dir/report/index.html               the self-contained HTML report

Every variant (baseline / RSD / controls) of a seed trains with the same data order, budget and seed; they
differ only in the RiskHead and its targets. With an :class:`~riskdistill.experiment.execution.Execution`
on Ray, training jobs and closed-loop route batches run as Ray tasks, with identical results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from riskdistill.experiment.config import CONTROL_TEACHERS, RISK_TARGETS, ExperimentConfig
from riskdistill.experiment.execution import Execution, RayContext, RayRouteExecutor, run_train_tasks
from riskdistill.experiment.stages import StageRunner
from riskdistill.io import atomic_write_json, load_json, load_json_object
from riskdistill.sim.suites import Suite, load_suite

if TYPE_CHECKING:
    from riskdistill.training.config import TrainConfig

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


STUDY_SUITE = "study_suite.json"


def control_label_dir(data_dir: Path, kind: str) -> Path:
    """Where a control teacher's labels of the training data go."""
    return data_dir / "train" / "labels" / f"control-{kind}"


def variant_train_config(cfg: ExperimentConfig, out_dir: str | Path, variant: str, seed: int) -> TrainConfig:
    """The training configuration of ``variant`` with ``seed`` in the experiment folder ``out_dir`` (its data,
    risk targets and the preset's overrides), as ``train_job`` runs it; also what a study script starts from
    to retrain one cell with a change (``riskdistill train --config``)."""
    from riskdistill.training.config import load_train_config

    tp, data_dir = cfg.train, Path(out_dir) / "data"
    kind = cfg.control_kind(variant)
    labels = control_label_dir(data_dir, kind) if kind in CONTROL_TEACHERS else None
    mode = "shuffled" if kind == "shuffled" else "teacher" if labels is not None else RISK_TARGETS[variant]
    base = {
        "data": {
            "root": str(data_dir / "train"),
            **({"labels": str(labels)} if labels is not None else {}),
            "batch_size": tp.batch_size,
            "num_workers": tp.num_workers,
            "image_hw": list(cfg.image_hw),
        },
        "model": {"preset": tp.preset, "image_hw": list(cfg.image_hw)},
        "risk_targets": mode,
        "max_steps": tp.max_steps,
        "seed": seed,
        "shuffle_seed": seed,
    }
    return load_train_config(None, tp.overrides, base=base)


def train_job(
    cfg_dict: dict[str, Any],
    out_dir: str,
    variant: str,
    seed: int,
    show_progress: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train ``variant`` with ``seed`` (``out_dir/train/<variant>-s<seed>``, resuming a started run); the
    stage outputs. Module level and plain arguments, so a Ray task runs exactly this. ``threads``: torch
    threads when the configuration does not set ``cpu_threads``."""
    from riskdistill.training.engine import launch

    cfg = ExperimentConfig.from_dict(cfg_dict)
    out = Path(out_dir)
    tcfg = variant_train_config(cfg, out, variant, seed).model_copy(update={"progress": show_progress})
    if threads is not None and tcfg.cpu_threads is None:
        import torch

        torch.set_num_threads(threads)
    run_dir = out / "train" / run_name(variant, seed)
    result = launch(tcfg, run_dir, resume=(run_dir / "checkpoints" / "latest.json").exists())
    if result.checkpoint is None or result.interrupted:
        raise RuntimeError(f"training {run_name(variant, seed)} did not finish (see {run_dir})")
    return {
        "checkpoint": str(result.checkpoint),
        "steps": result.step,
        "samples_per_s": result.samples_per_s,
        "train_losses": result.train_losses,
        "val_metrics": result.val_metrics,
    }


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

    def __init__(
        self,
        cfg: ExperimentConfig,
        out_dir: Path,
        console: Console,
        show_progress: bool = True,
        execution: Execution | None = None,
    ):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.console = console
        self.show_progress = show_progress
        self.execution = execution or Execution()
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
            crossing_walkers=d.crossing_walkers if split == "train" else 0,
        )
        problems = validate_dataset(out)
        if problems:
            raise RuntimeError(f"recorded data set {out} is invalid: {problems[:5]}")
        self.console.print(f"recorded {res.n_frames} frames of {len(res.recorded)} {split} routes -> {out}")
        return {"path": str(out), "frames": res.n_frames, "routes": len(res.recorded)}

    def control_teachers(self) -> list[str]:
        """The control teachers whose labels the variants train on (``corridor``, ``footprint``)."""
        kinds = [self.cfg.control_kind(v) for v in self.cfg.variants]
        return [k for k in CONTROL_TEACHERS if k in kinds]

    def control_options(self, kind: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The control teacher's config: the corridor is calibrated to the teacher's training maps
        (``teacher.controls.calibrate_corridor``); returns the config and the calibration report."""
        if kind != "corridor":
            return {}, None
        from riskdistill.contracts.labels import default_label_dir
        from riskdistill.geometry import BevGrid
        from riskdistill.teacher.controls import calibrate_corridor

        data = self.data_dir / "train"
        cfg, report = calibrate_corridor(data, default_label_dir(data), BevGrid.preset(self.cfg.teacher_grid))
        return cfg.to_dict(), report

    def label(self, split: str, control: str | None = None) -> dict[str, Any]:
        """Label ``split`` with the study's teacher, or with the control teacher ``control``."""
        from riskdistill.contracts.labels import default_label_dir
        from riskdistill.teacher.build import make_teacher
        from riskdistill.teacher.controls import compute_label_stats
        from riskdistill.teacher.runner import label_dataset

        data = self.data_dir / split
        t = self.cfg.teacher
        kind, options = t.kind, t.options
        out = default_label_dir(data)
        calibration = None
        if control is not None:
            kind, out = control, control_label_dir(self.data_dir, control)
            options, calibration = self.control_options(control)
        teacher = make_teacher(kind, options)
        res = label_dataset(
            data,
            out,
            teacher,
            grid=self.cfg.teacher_grid,
            workers=self.cfg.workers,  # the same labels with any number (processes, one frame batch each)
            show_progress=self.show_progress,
            run_dir=False,
        )
        card = self._label_card(data, out)
        self.console.print(
            f"labelled {res.labelled} frames of {split} with the {kind} teacher "
            f"({res.frames_per_s:.0f} frames/s, {res.n_errors} errors) -> {out}"
        )
        outputs = {
            "path": str(out),
            **{k: v for k, v in res.to_dict().items() if k != "out_dir"},
            "card": card,
        }
        if control is not None:  # what the control's maps share with the teacher's
            stats = {
                "teacher": compute_label_stats(default_label_dir(data)),
                control: compute_label_stats(out),
                "calibration": calibration,
            }
            atomic_write_json(out / "label_stats.json", stats)
            outputs["label_stats"] = str(out / "label_stats.json")
        return outputs

    @staticmethod
    def _label_card(data: Path, labels: Path) -> str:
        from riskdistill.teacher.card import build_label_card

        build_label_card(labels, data_root=data)
        return str(labels / "label_card.md")

    # -------------------------------------------------------------------------------------- training
    def train(self, variant: str, seed: int) -> dict[str, Any]:
        out = train_job(self.cfg.to_dict(), str(self.out), variant, seed, self.show_progress)
        self._print_trained(variant, seed, out)
        return out

    def _print_trained(self, variant: str, seed: int, out: dict[str, Any]) -> None:
        self.console.print(
            f"trained {run_name(variant, seed)}: {out['steps']} steps, {out['samples_per_s']:.1f} samples/s, "
            f"losses {', '.join(f'{k} {v:.3f}' for k, v in out['train_losses'].items())}"
        )

    def train_on_ray(self, runs: list[tuple[str, int]]) -> None:
        """The training stages not done yet, as parallel Ray tasks (each stage recorded as it finishes)."""
        import torch

        jobs = {}
        for variant, seed in runs:
            name = f"train {run_name(variant, seed)}"
            if self.stages.done(name) is None:
                args = (self.cfg.to_dict(), str(self.out.resolve()), variant, seed, False)
                jobs[name] = (train_job, args)
        if not jobs:
            return
        self.console.print(f"training {len(jobs)} run(s) as Ray tasks")
        for name, outputs, seconds in run_train_tasks(jobs, self.execution, torch.get_num_threads()):
            self.stages.record(name, outputs, seconds)
            variant, _, seed = name.removeprefix("train ").rpartition("-s")
            self._print_trained(variant, int(seed), outputs)

    # ------------------------------------------------------------------------------------ evaluation
    def open_loop(self, name: str, checkpoint: str) -> dict[str, Any]:
        from riskdistill.evaluation.open_loop import evaluate_open_loop

        res = evaluate_open_loop(
            checkpoint,
            self.data_dir / "bench",
            show_progress=self.show_progress,
            num_workers=min(1, self.cfg.train.num_workers),  # one loader process: decoding beside the forward
        )
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
        suite = self.closed_loop_suite()
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
            executor=self.route_executor(),
        )
        return {"path": str(out), "summary": summary}

    def closed_loop_suite(self) -> Suite:
        """The closed-loop routes: ``eval.closed_loop_routes`` spread over the bench routes (None: all)."""
        n = self.cfg.eval.closed_loop_routes
        suite = self.bench_suite()
        return suite if n is None else suite.spread(n)

    def route_executor(self) -> RayRouteExecutor | None:
        ex = self.execution
        return RayRouteExecutor(ex.routes_per_task) if ex.uses_ray else None

    def write_study_suite(self) -> None:
        """``study_suite.json``: the closed-loop routes; a resume refuses a folder whose routes changed."""
        path = self.out / STUDY_SUITE
        suite = self.closed_loop_suite()
        want = {"name": suite.name, "routes": [r.to_dict() for r in suite.routes]}
        if path.is_file() and load_json(path) != want:
            raise ValueError(
                f"{path}: this folder was evaluated on other closed-loop routes (the bench suite changed); "
                "use a new --out folder"
            )
        atomic_write_json(path, want)

    def compare(self, run_dirs: list[str]) -> dict[str, Any]:
        """The closed-loop runs of every rig compared, pair by pair (``ExperimentConfig.pairs``: RSD against
        the baseline and each control) and rig by rig (labels and seeds from each folder's ``run.json``)."""
        from riskdistill.evaluation.compare import write_comparison

        out = self.out / "compare"
        reference = "baseline" if "baseline" in self.cfg.variants else None
        write_comparison(run_dirs, out, reference=reference, pairs=self.cfg.pairs)
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
        path = build_report(inputs, self.out / "report", workers=self.cfg.workers)
        return {"path": str(path)}

    # ------------------------------------------------------------------------------------ the study
    def run(self) -> ExperimentResult:
        s = self.stages
        for split in ("train", "bench"):
            s.run(f"record {split}", lambda split=split: self.record(split))
        for split in ("train", "bench"):
            s.run(f"label {split}", lambda split=split: self.label(split))
        for kind in self.control_teachers():
            s.run(f"label train control-{kind}", lambda k=kind: self.label("train", control=k))

        runs = [(variant, seed) for seed in self.cfg.seeds for variant in self.cfg.variants]
        if self.execution.uses_ray:
            self.train_on_ray(runs)
        ckpts: dict[tuple[str, int], str] = {}
        for variant, seed in runs:
            ckpts[variant, seed] = s.run(
                f"train {run_name(variant, seed)}", lambda v=variant, sd=seed: self.train(v, sd)
            )["checkpoint"]

        self.write_study_suite()
        open_loop: dict[str, dict[str, Any]] = {}
        summaries: dict[str, dict[str, Any]] = {}
        closed_specs: list[str] = []
        closed_runs: list[str] = []
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
                closed_runs.append(cl["path"])

        compare = None
        if len(self.cfg.variants) > 1:
            compare = s.run("compare", lambda: self.compare(closed_runs))["path"]
        report_ckpts = [ckpts[v, self.cfg.seeds[0]] for v in self.cfg.variants]
        train_dirs = [str(self.out / "train" / run_name(v, sd)) for v, sd in runs]
        report = s.run(
            "report", lambda: self.report(closed_specs, open_specs, compare, report_ckpts, train_dirs)
        )["path"]
        return ExperimentResult(self.out, s, summaries, open_loop, Path(report))


def run_commits(out_dir: Path) -> list[str | None]:
    """The git commits an experiment folder ran at: its ``run.json`` and every ``run.before-*.json`` that
    :func:`keep_earlier_run_json` kept (empty: no run.json)."""
    runs = [out_dir / "run.json", *sorted(out_dir.glob("run.before-*.json"))]
    return [load_json(p).get("git_commit") for p in runs if p.is_file()]


def keep_earlier_run_json(out_dir: Path) -> None:
    """Before a resume rewrites ``run.json``: keep it as ``run.before-<utc>.json`` when it names another git
    commit, so a folder never hides that parts of it ran on other code."""
    import shutil
    from datetime import UTC, datetime

    from riskdistill.runs import git_commit

    path = out_dir / "run.json"
    if path.is_file() and load_json(path).get("git_commit") != git_commit():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        shutil.copy2(path, out_dir / f"run.before-{stamp}.json")


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    console: Console | None = None,
    show_progress: bool = True,
    execution: Execution | None = None,
) -> ExperimentResult:
    """Run (or resume) the whole study in ``out_dir``; see the module docstring for the layout.
    ``execution``: local (default) or Ray (:mod:`riskdistill.experiment.execution`)."""
    from riskdistill.runs import create_run_dir

    out_dir = Path(out_dir)
    check_resume(cfg, out_dir)
    keep_earlier_run_json(out_dir)
    create_run_dir(
        out_dir, "experiment", cfg.to_dict(), seeds={f"seed{i}": s for i, s in enumerate(cfg.seeds)}
    )
    execution = execution or Execution()
    with RayContext(execution):
        return Pipeline(cfg, out_dir, console or Console(), show_progress, execution).run()
