"""Closed-loop throughput of a student on CPU, per driver configuration (planning rate x inference engine),
with the driving results of each so that speed is compared at equal quality.

    python benchmarks/bench_closed_loop.py [--checkpoint RUN/checkpoints/final] [--routes 4] [--workers 1 2]
        [--configs 1:eager 5:eager 1:onnx 5:onnx] [--route-timeout 20] [--repeats 1] [--out DIR]

A configuration ``k:engine`` is ``StudentDriver(plan_every_steps=k, engine=engine)``: the student plans on
every k-th 10 Hz step (the cameras are rendered only then) and runs on PyTorch eager or onnxruntime.
``1:eager`` is the driver as it was before planning rates and engines existed (bit-identical results).
``k:engine:brake`` adds the occupancy brake (``--occupancy-brake``; onnx then also returns the occupancy).
``k:engine:noreuse`` turns off the driver's reuse of a repeated observation's outputs
(``StudentDriver(reuse_repeated=False)``; the drive is the same, only slower where the car stands still).
Without ``--checkpoint`` an untrained tiny student (64x176) is used; it rarely finishes a route, so every
route is capped at ``--route-timeout`` simulated seconds (0: the routes' own timeouts).

Reported per configuration and worker count: wall time of the whole evaluation (worker start-up and the one-
off ONNX export included), routes per minute, simulated seconds per wall second, the mean time of a 10 Hz step
inside the routes, the speed-up over the first configuration (routes/min and sim s / wall s), and DS / SR / RC
of the routes, and the CPU seconds per route (all processes; less sensitive to other jobs on a shared host
than wall time; ``2 x 60 / CPU s per route`` is the rate two otherwise idle cores would give). ``--repeats``
runs every configuration that many times, interleaved, and keeps the fastest (a shared host slows runs, never
speeds them up); the driving results are the same every time. Route files stay in ``--out`` (default: a
temporary folder) for comparisons.

``--steady`` runs the routes one after the other in this process on one thread, as an evaluation worker
does once started (after a warm-up route: imports, loading the student, the ONNX export), and reports CPU
seconds per route and per 10 Hz step; ``120 / CPU s per route`` is what two otherwise idle cores would
give on a long suite, where worker start-up is spread over many routes. On a shared host this is the
number to compare: CPU time is counted only while the process runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from riskdistill.evaluation.closed_loop import evaluate_suite
from riskdistill.evaluation.generalisation import EvalVariant
from riskdistill.evaluation.route_runner import run_one_route
from riskdistill.sim.suites import load_suite


def parse_config(text: str) -> dict:
    k, _, rest = text.partition(":")
    engine, _, extra = rest.partition(":")
    extras = {
        "": {},
        "brake": {"occupancy_brake": True},
        "noreuse": {"reuse_repeated": False},
    }
    if extra not in extras:
        raise SystemExit(f"config {text!r}: k:engine[:brake|:noreuse], e.g. 5:onnx:brake")
    return {"plan_every_steps": int(k), "engine": engine or "eager", **extras[extra]}


def cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the evaluation's worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_config(ckpt: Path, suite, out: Path, workers: int, options: dict, variant: EvalVariant) -> dict:
    t0, c0 = time.perf_counter(), cpu_s()
    results, summary = evaluate_suite(
        suite, str(ckpt), out, workers=workers, variant=variant, driver_options=options, show_progress=False
    )
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    sim_s = sum(r.duration_game_s for r in results)
    route_wall = sum(r.duration_system_s for r in results)
    errors = [json.loads(p.read_text())["error"] for p in (out / "routes").glob("*.json")]
    return {
        "wall_s": wall,
        "routes": len(results),
        "routes_per_min": 60.0 * len(results) / wall,
        "cpu_s_per_route": cpu / max(len(results), 1),
        "sim_per_wall": sim_s / wall,
        "ms_per_step": 1000.0 * route_wall / max(sim_s * 10.0, 1e-9),
        "ds": summary["driving_score"],
        "sr": summary["success_rate"],
        "rc": sum(r.route_completion_pct for r in results) / max(len(results), 1),
        "errors": [e for e in errors if e],
    }


def run_steady(ckpt: Path, suite, options: dict, variant: EvalVariant) -> dict:
    """The routes one after the other in this process on one thread, as a worker runs them once started:
    CPU seconds per route and per simulated step, after a warm-up route (imports, loading, export)."""
    import torch

    torch.set_num_threads(1)
    vdict = variant.to_dict()
    run_one_route(suite.routes[0], 0, str(ckpt), {**vdict, "route_timeout_s": 1.0}, None, (), options)
    c0, t0 = time.process_time(), time.perf_counter()
    docs = [
        run_one_route(spec, i, str(ckpt), vdict, None, (), options) for i, spec in enumerate(suite.routes)
    ]
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    steps = sum(d["duration_game_s"] for d in docs) * 10.0
    return {
        "cpu_s_per_route": cpu / len(docs),
        "cpu_ms_per_step": 1000.0 * cpu / max(steps, 1.0),
        "wall_s": wall,
        "ds": sum(d["scores"]["score_composed"] for d in docs) / len(docs),
        "errors": [d["error"] for d in docs if d["error"]],
    }


def steady_main(args, ckpt: Path, suite, configs, variant: EvalVariant) -> None:
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name, options in configs:
            r = run_steady(ckpt, suite, options, variant)
            if r["errors"]:
                Console().print(f"[red]{name} route errors:[/] {r['errors']}")
            if name not in best or r["cpu_s_per_route"] < best[name]["cpu_s_per_route"]:
                best[name] = r
    table = Table(
        title=f"closed loop in one process, one thread, {ckpt.name}, {len(suite.routes)} bench routes, "
        f"after a warm-up route, best of {args.repeats}"
    )
    for col in ("config", "CPU s / route", "CPU ms / step", "speed-up", "routes/min on 2 idle cores", "DS"):
        table.add_column(col, justify="left" if col == "config" else "right")
    ref = best[configs[0][0]]
    for name, _ in configs:
        r = best[name]
        table.add_row(
            name,
            f"{r['cpu_s_per_route']:.2f}",
            f"{r['cpu_ms_per_step']:.2f}",
            f"{ref['cpu_s_per_route'] / r['cpu_s_per_route']:.2f}x",
            f"{120.0 / r['cpu_s_per_route']:.1f}",
            f"{r['ds']:.1f}",
        )
    Console(width=200).print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routes", type=int, default=4, help="bench routes, spread over the scenario types")
    ap.add_argument("--route-timeout", type=float, default=None, help="default: 20 untrained, 0 trained")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--configs", nargs="+", default=["1:eager", "5:eager", "1:onnx", "5:onnx"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--image-hw", type=int, nargs=2, default=[64, 176])
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: an untrained tiny student")
    ap.add_argument("--out", type=Path, default=None, help="keep the evaluation folders here")
    ap.add_argument("--steady", action="store_true", help="routes in this process: CPU per route and step")
    args = ap.parse_args()

    tmp = args.out or Path(tempfile.mkdtemp(prefix="bench_closed_loop_"))
    ckpt = args.checkpoint
    timeout = args.route_timeout
    if ckpt is None:
        import torch

        from riskdistill.models import build_student, save_student, student_config

        torch.manual_seed(0)
        ckpt = save_student(
            build_student(student_config("tiny", image_hw=tuple(args.image_hw))), tmp / "student"
        )
        timeout = 20.0 if timeout is None else timeout
    suite = load_suite("bench").spread(args.routes)
    variant = EvalVariant(route_timeout_s=timeout or None)
    configs = [(c, parse_config(c)) for c in args.configs]
    if args.steady:
        steady_main(args, ckpt, suite, configs, variant)
        return

    best: dict[tuple[str, int], dict] = {}
    for rep in range(args.repeats):
        for workers in args.workers:
            for name, options in configs:
                out = tmp / f"{name.replace(':', '-')}-w{workers}-r{rep}"
                r = run_config(ckpt, suite, out, workers, options, variant)
                if r["errors"]:
                    Console().print(f"[red]{name} route errors:[/] {r['errors']}")
                key = (name, workers)
                if key not in best or r["wall_s"] < best[key]["wall_s"]:
                    best[key] = r
                Console().print(
                    f"{name} workers={workers} repeat={rep}: {r['wall_s']:.1f} s", highlight=False
                )

    cap = f"<= {timeout:g} s each" if timeout else "own timeouts"
    table = Table(
        title=f"closed loop, {ckpt.name}, {len(suite.routes)} bench routes ({cap}), best of {args.repeats}"
    )
    cols = (
        "config",
        "workers",
        "wall s",
        "routes/min",
        "sim s / wall s",
        "ms / step",
        "CPU s / route",
        "speed-up",
        "DS",
        "SR %",
        "RC %",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "config" else "right")
    for workers in args.workers:
        ref = best[(configs[0][0], workers)]
        for name, _ in configs:
            r = best[(name, workers)]
            speed_up = (
                f"{r['routes_per_min'] / ref['routes_per_min']:.2f}x / "
                f"{r['sim_per_wall'] / ref['sim_per_wall']:.2f}x"
            )
            table.add_row(
                name,
                str(workers),
                f"{r['wall_s']:.1f}",
                f"{r['routes_per_min']:.2f}",
                f"{r['sim_per_wall']:.2f}",
                f"{r['ms_per_step']:.1f}",
                f"{r['cpu_s_per_route']:.1f}",
                speed_up,
                f"{r['ds']:.1f}",
                f"{r['sr']:.1f}",
                f"{r['rc']:.1f}",
            )
    Console(width=200).print(table)
    Console().print(f"evaluation folders: {tmp}")


if __name__ == "__main__":
    main()
