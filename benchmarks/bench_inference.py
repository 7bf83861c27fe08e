"""The student's driving-path inference on CPU, per engine: what ``StudentDriver`` runs every planning step.

    python benchmarks/bench_inference.py [--checkpoint CKPT] [--batch 1 16] [--threads 1] [--iters 30]
        [--engines eager-no-grad eager channels-last onnx onnx-extended compile]

Engines: ``eager-no-grad`` (PyTorch under ``no_grad``), ``eager`` (``inference_mode``: the ``eager`` engine of
``riskdistill.models.engines``, the reference), ``channels-last`` (eager with the weights in channels-last
memory format), ``onnx`` (the ``onnx`` engine: onnxruntime, all graph optimisations), ``onnx-extended``
(onnxruntime without layout optimisations), ``compile`` (``torch.compile``, inductor; needs a C++ compiler).
Each is timed over ``--iters`` calls after 3 warm-up calls; reported: median wall ms and median CPU ms per
call (CPU time counts this process only, so it is less sensitive than wall time to other jobs on a shared
host; with one thread it is the engine's own cost), per-sample CPU ms, the speed-up over ``eager`` and the
largest difference from ``eager`` in waypoints (m) and risk.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bench_models import make_obs
from riskdistill.models import build_student, load_student, student_config
from riskdistill.models.engines import EagerEngine, OnnxEngine


def timed(fn, iters: int) -> tuple[float, float]:
    for _ in range(3):
        fn()
    wall, cpu = [], []
    for _ in range(iters):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def make_engine(name: str, student, with_risk: bool, threads: int, tmp: Path):
    if name == "eager":
        return EagerEngine(student, with_risk)
    if name == "eager-no-grad":

        def run(obs):
            with torch.no_grad():
                out = student(obs, with_risk=with_risk)
            return {k: v.numpy() for k, v in out.items() if k != "bev"}

        return run
    if name == "channels-last":
        import copy

        cl = copy.deepcopy(student).to(memory_format=torch.channels_last)
        return EagerEngine(cl, with_risk)
    if name in ("onnx", "onnx-extended"):
        eng = OnnxEngine(student, with_risk, onnx_path=tmp, threads=threads)
        if name == "onnx":
            return eng
        import onnxruntime as ort

        def run(obs, _state={}):  # noqa: B006 - a session built on first use
            if "s" not in _state:
                path = eng.prepare(obs)
                so = ort.SessionOptions()
                so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
                _state["s"] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            s = _state["s"]
            feeds = {i.name: getattr(obs, i.name).numpy() for i in s.get_inputs()}
            return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))

        return run
    if name == "compile":
        compiled = torch.compile(student, dynamic=False)

        def run(obs):
            with torch.inference_mode():
                out = compiled(obs, with_risk=with_risk)
            return {k: v.numpy() for k, v in out.items() if k != "bev"}

        return run
    raise ValueError(f"unknown engine {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: an untrained tiny student")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--no-risk", action="store_true", help="skip the RiskHead (with_risk=False)")
    ap.add_argument(
        "--engines", nargs="+", default=["eager-no-grad", "eager", "channels-last", "onnx", "onnx-extended"]
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.checkpoint is not None:
        student = load_student(args.checkpoint).eval()
    else:
        student = build_student(student_config("tiny")).eval()
    with_risk = student.has_risk_head and not args.no_risk
    tmp = Path(tempfile.mkdtemp(prefix="bench_inference_"))
    hw = tuple(student.cfg.image_hw)
    table = Table(
        title=f"{student.cfg.preset} student {hw[0]}x{hw[1]}, {args.threads} thread(s), risk "
        f"{'on' if with_risk else 'off'}, median of {args.iters}"
    )
    for col in ("engine", "batch", "wall ms", "CPU ms", "CPU ms / sample", "speed-up (CPU)", "max |dwp| m"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    table.add_column("max |drisk|", justify="right")
    for b in args.batch:
        obs = make_obs(b, hw)
        ref = EagerEngine(student, with_risk)(obs)
        ref_cpu = None
        for name in args.engines:
            try:
                engine = make_engine(name, student, with_risk, args.threads, tmp)
                out = engine(obs)  # also exports / compiles
                wall, cpu = timed(lambda engine=engine, obs=obs: engine(obs), args.iters)
            except Exception as exc:  # an engine that does not work here (e.g. no C++ compiler)
                table.add_row(name, str(b), "-", "-", "-", f"failed: {type(exc).__name__}", "-", "-")
                continue
            if name == "eager":
                ref_cpu = cpu
            dwp = float(np.abs(out["waypoints"] - ref["waypoints"]).max())
            drisk = float(np.abs(out["risk"] - ref["risk"]).max()) if with_risk else float("nan")
            table.add_row(
                name,
                str(b),
                f"{wall:.1f}",
                f"{cpu:.1f}",
                f"{cpu / b:.2f}",
                f"{ref_cpu / cpu:.2f}x" if ref_cpu else "-",
                f"{dwp:.1e}",
                f"{drisk:.1e}",
            )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
