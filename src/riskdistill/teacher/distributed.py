"""Labelling with Ray Data: the runner's batches through ``map_batches`` over an actor pool.

    from riskdistill.teacher.distributed import label_dataset_ray
    label_dataset_ray("data/train", teacher_factory=OracleTeacher, num_actors=2)            # local
    label_dataset_ray("/shared/data", teacher_factory=make_vlm_teacher, num_actors=8,       # cluster
                      num_gpus_per_actor=1, address="auto")

Everything but the execution is :func:`riskdistill.teacher.runner.label_dataset` (the same plan of
frames, cache keys, records, maps, error records, index and run folder; the driver writes the index), so
a Ray run and an in-process run give identical labels, and either resumes the other. Each actor builds
its teacher once (``teacher_factory()``: load a VLM onto the actor's GPU there, not in the driver) and
labels ``batch_size`` frames per call (``label_many`` when the teacher has it). The data set and the
label folder must be reachable from every node under the same path (a shared file system).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.geometry import BevGrid
from riskdistill.teacher.rasterise import RasterConfig
from riskdistill.teacher.runner import (
    Batches,
    Executor,
    FrameOutcome,
    LabelJob,
    LabelRunResult,
    _iter_batch,
    label_dataset,
)

_FIELDS = ("frame_id", "status", "key", "seconds", "n_objects", "unlinked", "error_kind")


class LabelActor:
    """A Ray Data actor: holds the data set and a teacher; labels a batch ``{"index", "need"}``."""

    def __init__(
        self, job: LabelJob, data_root: str, teacher_factory: Callable[[], Any], numba_threads: int = 1
    ):
        from riskdistill.data.storage import RecordedDataset

        try:
            import numba

            numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
        except Exception:  # pragma: no cover
            pass
        self.job = job
        self.ds = RecordedDataset(data_root)
        self.teacher = teacher_factory()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [(int(i), bool(n)) for i, n in zip(batch["index"], batch["need"], strict=True)]
        outs = list(_iter_batch(self.job, self.ds, self.teacher, items))
        return {
            f: np.array(["" if getattr(o, f) is None else getattr(o, f) for o in outs], dtype=object)
            if f in ("frame_id", "status", "key", "error_kind")
            else np.array([getattr(o, f) for o in outs])
            for f in _FIELDS
        }


def _outcome(row: dict[str, Any]) -> FrameOutcome:
    return FrameOutcome(
        frame_id=str(row["frame_id"]),
        status=str(row["status"]),
        key=str(row["key"]),
        seconds=float(row["seconds"]),
        n_objects=int(row["n_objects"]),
        unlinked=int(row["unlinked"]),
        error_kind=str(row["error_kind"]) or None,
    )


def ray_executor(
    teacher_factory: Callable[[], Any] | None = None,
    num_actors: int = 2,
    num_cpus_per_actor: float = 1.0,
    num_gpus_per_actor: float = 0.0,
    address: str | None = None,
    init_kwargs: dict[str, Any] | None = None,
) -> Executor:
    """An executor for :func:`label_dataset` running ``map_batches(LabelActor,
    compute=ActorPoolStrategy(size=num_actors))``. ``teacher_factory`` builds each actor's teacher (default:
    the driver's teacher, pickled); ``address``: a running cluster (``"auto"``), else a local Ray is
    started (``init_kwargs``, e.g. ``{"num_cpus": 2}``) unless one is running already. A local Ray's servers
    listen on every network interface (Ray refuses a loopback node address): the ``label`` command starts
    one only when asked (``--ray-address local``)."""

    def run(job: LabelJob, data_root: str, teacher: Any, batches: Batches) -> Iterable[list[FrameOutcome]]:
        import ray

        if not batches:
            return
        if not ray.is_initialized():
            ray.init(address=address, **(init_kwargs or {}))
        factory = teacher_factory if teacher_factory is not None else _Const(teacher)
        items = [{"index": i, "need": need} for b in batches for i, need in b]
        batch_size = max(len(b) for b in batches)
        ds = ray.data.from_items(items, override_num_blocks=max(1, len(batches)))
        out = ds.map_batches(
            LabelActor,
            fn_constructor_kwargs={
                "job": job,
                "data_root": data_root,
                "teacher_factory": factory,
                "numba_threads": max(1, int(num_cpus_per_actor)),
            },
            compute=ray.data.ActorPoolStrategy(size=num_actors),
            batch_size=batch_size,
            num_cpus=num_cpus_per_actor,
            num_gpus=num_gpus_per_actor or None,
            batch_format="numpy",
        )
        for batch in out.iter_batches(batch_size=batch_size, batch_format="numpy"):
            n = len(batch["frame_id"])
            yield [_outcome({f: batch[f][k] for f in _FIELDS}) for k in range(n)]

    return run


class _Const:
    """A picklable factory returning a fixed (pickled) teacher."""

    def __init__(self, teacher: Any):
        self.teacher = teacher

    def __call__(self) -> Any:
        return self.teacher


def label_dataset_ray(
    data_root: str | Path,
    out_dir: str | Path | None = None,
    teacher_factory: Callable[[], Any] | None = None,
    grid: BevGrid | str = "tiny",
    shard: tuple[int, int] | str = (0, 1),
    *,
    raster: RasterConfig | None = None,
    num_actors: int = 2,
    num_cpus_per_actor: float = 1.0,
    num_gpus_per_actor: float = 0.0,
    batch_size: int = 16,
    address: str | None = None,
    init_kwargs: dict[str, Any] | None = None,
    show_progress: bool = True,
    limit: int | None = None,
    fatal: tuple[type[BaseException], ...] = (),
) -> LabelRunResult:
    """:func:`label_dataset` through Ray Data. The driver builds one teacher too (``teacher_factory()``,
    default ``OracleTeacher``) for its config hash; for a VLM pass a factory that loads lazily or make the
    driver's copy cheap."""
    from riskdistill.teacher.oracle import OracleTeacher

    factory = teacher_factory or OracleTeacher
    return label_dataset(
        data_root,
        out_dir,
        factory(),
        grid,
        shard,
        raster=raster,
        batch_size=batch_size,
        show_progress=show_progress,
        limit=limit,
        fatal=fatal,
        executor=ray_executor(
            factory, num_actors, num_cpus_per_actor, num_gpus_per_actor, address, init_kwargs
        ),
    )
