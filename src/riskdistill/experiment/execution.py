"""Where the experiment's heavy stages run: in this process and its worker processes (default), or as tasks
on a Ray cluster (``riskdistill experiment --ray-address ADDR``).

With Ray, the training jobs of all (variant, seed) runs still to do are submitted at once, one Ray task
each (:func:`run_train_tasks`), and every closed-loop evaluation hands its routes to Ray in batches
(:class:`RayRouteExecutor`: ``routes_per_task`` routes per task, results written by the driver as they come
back). Everything else (recording, labelling, open loop, statistics) runs in the driver. A task computes
exactly what the local run computes (the same functions, seeds and files; a training task uses the
driver's torch thread count unless ``train.overrides`` sets ``cpu_threads``), so a Ray run and a local run
give identical results and either resumes the other. The output folder must be reachable under the same
path from every node (a shared file system); paths handed to tasks are absolute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Execution:
    """How the stages run; not part of the experiment's configuration (results do not depend on it).

    ``ray_address``: None runs locally; otherwise ``ray.init(address=...)`` (``"auto"``, ``"ray://..."``;
    ``"local"`` starts a Ray on this machine), unless Ray is initialised already. ``train_cpus`` /
    ``train_gpus``: resources of a training task (default: the driver's torch thread count, no GPU);
    ``routes_per_task``: closed-loop routes per Ray task; ``ray_init``: more ``ray.init`` arguments."""

    ray_address: str | None = None
    train_cpus: float | None = None
    train_gpus: float = 0.0
    routes_per_task: int = 4
    ray_init: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_ray(self) -> bool:
        return self.ray_address is not None


class RayContext:
    """Initialises Ray for an :class:`Execution` (and shuts it down at exit when it started it)."""

    def __init__(self, execution: Execution):
        self.execution = execution
        self.started = False

    def __enter__(self) -> RayContext:
        if self.execution.uses_ray:
            import ray

            if not ray.is_initialized():
                address = None if self.execution.ray_address == "local" else self.execution.ray_address
                ray.init(address=address, **self.execution.ray_init)
                self.started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            import ray

            ray.shutdown()


def run_train_tasks(
    jobs: dict[str, tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]],
    execution: Execution,
    threads: int,
) -> Iterator[tuple[str, dict[str, Any], float]]:
    """Submit every job ``{stage name: (function, args)}`` as a Ray task (``function(*args, threads=...)``
    returning its outputs) and yield ``(stage name, outputs, seconds)`` as each finishes. A task that fails
    raises here, after the others finished (their stages are kept)."""
    import ray

    remote = ray.remote(
        num_cpus=execution.train_cpus if execution.train_cpus is not None else threads,
        num_gpus=execution.train_gpus or None,
        max_retries=0,
    )(_timed)
    refs = {remote.remote(fn, args, threads): name for name, (fn, args) in jobs.items()}
    pending, failed = list(refs), None
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            outputs, seconds = ray.get(ready[0])
        except Exception as exc:  # keep collecting the others: their stages stay done
            failed = failed or RuntimeError(
                f"the Ray training task of stage {refs[ready[0]]!r} failed: {exc}"
            )
            continue
        yield refs[ready[0]], outputs, seconds
    if failed is not None:
        raise failed


def _timed(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...], threads: int) -> tuple[dict, float]:
    import time

    t0 = time.perf_counter()
    out = fn(*args, threads=threads)
    return out, time.perf_counter() - t0


@dataclass(frozen=True)
class RayRouteExecutor:
    """An ``evaluation.closed_loop.RouteExecutor``: the routes left to do, ``routes_per_task`` per Ray task
    (``evaluation.route_runner.run_route_batch``); yields route files as tasks finish."""

    routes_per_task: int = 4
    num_cpus: float = 1.0

    def __call__(
        self,
        todo: list[tuple[int, Any]],
        driver_spec: str,
        variant: dict[str, Any],
        out_dir: Path,
        recorders: Any,
        driver_options: dict[str, Any] | None = None,
    ) -> Iterable[dict[str, Any]]:
        import ray

        from riskdistill.evaluation.route_runner import run_route_batch

        spec = str(Path(driver_spec).resolve()) if Path(driver_spec).exists() else driver_spec
        remote = ray.remote(num_cpus=self.num_cpus, max_retries=1)(run_route_batch)
        n = max(1, self.routes_per_task)
        pending = [
            remote.remote(
                todo[k : k + n], spec, variant, str(Path(out_dir).resolve()), tuple(recorders), driver_options
            )
            for k in range(0, len(todo), n)
        ]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield from ray.get(ready[0])
