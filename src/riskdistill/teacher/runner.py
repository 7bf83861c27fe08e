"""The labelling runner: a teacher over a recorded data set -> label records + BEV risk maps.

    result = label_dataset("data/train", teacher=OracleTeacher(), grid="tiny")   # -> data/train/labels/risk

Layout of the label folder (``out_dir``, by default ``<data>/labels/risk``: what
``data.targets.RiskMapTarget`` reads; owned by :mod:`riskdistill.contracts.labels`)::

    labelling.json                 folder settings: data root, grid, raster parameters, teacher
    meta.json                      {"grid": ...} (written by save_risk_map)
    maps/<frame_id>.npy            float16 [H, W] risk map
    records/<frame_id>.json        the FrameLabel (JSON, atomic)
    errors/<frame_id>.json         a frame that failed: kind, message, raw text (removed when it succeeds)
    index/shard-<i>-of-<n>.jsonl   one line per finished frame: frame id, cache key, time
    runs/<utc>-shard-<i>-of-<n>/   run.json (provenance) + log.txt + summary.json (counts, frames/s)

Guarantees:

- **Sharded**: frame ``f`` belongs to shard ``i`` of ``n`` when ``sha256(frame_id) % n == i``: disjoint,
  covering, and stable when the data set grows.
- **Resumable**: a frame is finished when its record and map are written (map first, then the record,
  then the index line; a current record without its index line, left by a kill between the two, is
  re-rasterised, not asked again). Rerunning the same command skips finished frames: the cache key is
  ``frame id + teacher config hash + grid + raster parameters`` (last index line per frame wins; the
  record's ``provenance.config_hash`` is checked too). A changed teacher config relabels; a changed
  grid or raster parameter re-rasterises from the stored record without asking the teacher again.
- **Failures**: a frame whose teacher call, reply or rasterising fails gets ``errors/<frame_id>.json``
  and the run goes on; errors are retried on the next run.
- **Parallel**: ``workers > 1`` labels in spawned processes (Numba + fork is unsafe), for teachers that
  pickle (the oracle); ``batch_size`` feeds ``teacher.label_many`` (VLM batching) when it exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from riskdistill.contracts.labels import (
    INDEX,
    LABELLING_JSON,
    RECORDS,
    default_label_dir,
    error_path,
    record_path,
    risk_map_path,
)
from riskdistill.data.storage import FrameRecord, RecordedDataset
from riskdistill.geometry import BevGrid
from riskdistill.io import atomic_path, atomic_write_json
from riskdistill.teacher.rasterise import RasterConfig, rasterise_label, save_risk_map
from riskdistill.teacher.schema import FrameLabel

log = logging.getLogger(__name__)


class Teacher(Protocol):
    """What the runner needs of a teacher: ``label(frame) -> FrameLabel`` and a config hash (a
    ``config_hash`` attribute or method, or ``config.config_hash()``). Optional: ``label_many(frames)``
    returning ``FrameLabel`` or an error object (``.kind``, ``.raw_text``) per frame, and
    ``gpu_seconds`` (cumulative) for the cost figures."""

    def label(self, frame: FrameRecord) -> FrameLabel: ...


# ------------------------------------------------------------------------------------------ helpers
def teacher_config_hash(teacher: Any) -> str:
    """The teacher's config hash (``config_hash`` attribute / method, else ``config.config_hash()``)."""
    h = getattr(teacher, "config_hash", None)
    if h is None and hasattr(teacher, "config"):
        h = getattr(teacher.config, "config_hash", None)
    if callable(h):
        h = h()
    if not isinstance(h, str) or not h:
        raise TypeError(
            f"teacher {type(teacher).__name__} has no config hash (config_hash or config.config_hash())"
        )
    return h


def teacher_kind(teacher: Any) -> str:
    """The teacher's ``kind`` attribute, else ``"oracle"``, ``"vlm"`` or the class name (recorded in
    ``labelling.json``)."""
    kind = getattr(teacher, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    name = type(teacher).__name__
    for kind in ("oracle", "vlm"):
        if kind in name.lower():
            return kind
    return name


def resolve_grid(grid: BevGrid | str | dict) -> BevGrid:
    if isinstance(grid, BevGrid):
        return grid
    if isinstance(grid, dict):
        return BevGrid.from_dict(grid)
    return BevGrid.preset(grid)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; a clear ``ValueError`` otherwise."""
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ValueError(f"shard must look like 'i/n' (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need n >= 1 and 0 <= i < n")
    return i, n


def shard_of(frame_id: str, n: int) -> int:
    """The shard (of ``n``) that labels ``frame_id``: stable hash, independent of frame order."""
    return int.from_bytes(hashlib.sha256(frame_id.encode()).digest()[:8], "big") % n


def map_key(grid: BevGrid, raster: RasterConfig) -> str:
    blob = json.dumps({"grid": grid.to_dict(), "raster": raster.model_dump()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_key(frame_id: str, teacher_hash: str, mkey: str) -> str:
    return hashlib.sha256(f"{frame_id}\0{teacher_hash}\0{mkey}".encode()).hexdigest()[:16]


map_path = risk_map_path


def load_record(out_dir: Path, frame_id: str) -> FrameLabel | None:
    """The stored label of a frame, or None when it is missing or unreadable."""
    p = record_path(out_dir, frame_id)
    try:
        return FrameLabel.model_validate_json(p.read_bytes())
    except (OSError, ValueError):
        return None


def read_index(out_dir: Path) -> dict[str, dict[str, Any]]:
    """``{frame_id: last index entry}`` over every shard's index file (the latest ``t`` wins; a torn last
    line of a killed run is ignored)."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted((Path(out_dir) / INDEX).glob("*.jsonl")):
        with open(p, encoding="utf-8") as f:
            for line in f:
                try:
                    e = json.loads(line)
                    fid = e["frame_id"]
                except (ValueError, KeyError, TypeError):
                    continue
                if fid not in out or e.get("t", 0.0) >= out[fid].get("t", 0.0):
                    out[fid] = e
    return out


def iter_records(out_dir: Path) -> Iterable[FrameLabel]:
    """Every readable record of a label folder (sorted by path)."""
    for p in sorted((Path(out_dir) / RECORDS).rglob("*.json")):
        try:
            yield FrameLabel.model_validate_json(p.read_bytes())
        except (OSError, ValueError):
            log.warning("unreadable label record %s", p)


def map_problem(path: Path, grid: BevGrid) -> str | None:
    """None when a stored risk map is sound (readable ``.npy`` without pickle, float, the grid's shape
    ``[H, W]`` or ``[1, H, W]``, finite, in [0, 1]); otherwise what is wrong with it. A rerun re-rasterises a
    frame whose map has a problem instead of counting it as done."""
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return "missing"
    except Exception as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != grid.shape:
        return f"shape {arr.shape}, the grid is {grid.shape}"
    if arr.dtype.kind != "f":
        return f"dtype {arr.dtype}, expected floats"
    if not np.all(np.isfinite(arr)):
        return "contains NaN or inf"
    if arr.size and (float(arr.min()) < 0.0 or float(arr.max()) > 1.0):
        return f"values outside [0, 1] ({float(arr.min())} .. {float(arr.max())})"
    return None


def is_error(result: Any) -> bool:
    return isinstance(result, BaseException) or (
        not isinstance(result, FrameLabel) and hasattr(result, "kind")
    )


#: At most this many characters of a failed frame's raw text go into its error record (the cut is recorded).
MAX_ERROR_RAW_CHARS = 16_384


def error_info(result: Any) -> dict[str, Any]:
    """``kind``, ``message``, ``raw_text`` (at most :data:`MAX_ERROR_RAW_CHARS`; ``raw_chars`` is the full
    length when it was cut) of an exception or a teacher's reply error."""
    if isinstance(result, BaseException):
        info = {
            "kind": str(getattr(result, "kind", None) or type(result).__name__),
            "message": str(getattr(result, "message", None) or result)[:2000],
            "raw_text": getattr(result, "raw_text", None),
        }
        for k in ("status", "attempts", "raw_chars"):
            if isinstance(getattr(result, k, None), int):
                info[k] = getattr(result, k)
    else:
        info = {
            "kind": str(getattr(result, "kind", "error")),
            "message": str(getattr(result, "message", "") or result)[:2000],
            "raw_text": getattr(result, "raw_text", None),
        }
    raw = info["raw_text"]
    if raw is not None and not isinstance(raw, str):
        raw = info["raw_text"] = repr(raw)
    if isinstance(raw, str) and len(raw) > MAX_ERROR_RAW_CHARS:
        info["raw_text"] = raw[:MAX_ERROR_RAW_CHARS]
        info.setdefault("raw_chars", len(raw))
    return info


# ------------------------------------------------------------------------------------------ one frame
class LazyAnnotation(Mapping[str, np.ndarray]):
    """A frame's annotation read key by key from its open ``.npz`` (a teacher needs a dozen of its ~50
    arrays: about 3x faster than reading all). Installed as ``frame.annotation`` by the runner for the
    duration of a batch, then closed."""

    def __init__(self, path: Path):
        self._z = np.load(path, allow_pickle=False)
        self._files = frozenset(self._z.files)
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            if key not in self._files:
                raise KeyError(key)
            self._cache[key] = self._z[key]
        return self._cache[key]

    def __contains__(self, key: object) -> bool:
        return key in self._files

    def __iter__(self) -> Iterator[str]:
        return iter(self._z.files)

    def __len__(self) -> int:
        return len(self._files)

    def close(self) -> None:
        """Close the file (keys read so far stay available)."""
        self._z.close()


def _install_lazy_annotation(frame: FrameRecord) -> LazyAnnotation | None:
    if "annotation" in frame.__dict__:
        return None
    try:
        lazy = LazyAnnotation(frame.annotation_file())
    except Exception:  # unreadable or outside the data set: FrameRecord.annotation raises its own clear error
        return None
    frame.__dict__["annotation"] = lazy
    return lazy


@dataclass
class FrameOutcome:
    frame_id: str
    status: str  # "labelled" | "rasterised" (map only, from the stored record) | "error"
    key: str
    seconds: float
    n_objects: int = 0
    unlinked: int = 0
    error_kind: str | None = None


def _finish_frame(
    out_dir: Path,
    frame: FrameRecord,
    label: FrameLabel,
    grid: BevGrid,
    raster: RasterConfig,
    write_record: bool,
    paint: Callable[[FrameRecord, BevGrid], np.ndarray] | None = None,
) -> int:
    """Write the frame's map (``paint(frame, grid)`` for a teacher that paints its own, e.g. the corridor
    control; else the label's objects rasterised) and record."""
    if label.frame_id != frame.frame_id:
        raise ValueError(
            f"teacher returned a label for frame {label.frame_id!r}, expected {frame.frame_id!r}"
        )
    if paint is not None:
        m, unlinked = np.asarray(paint(frame, grid), dtype=np.float32), []
    else:
        m, unlinked = rasterise_label(
            {o.object_id: o.risk for o in label.objects}, frame.annotation, grid, raster
        )
    save_risk_map(out_dir, frame.frame_id, m, grid)
    if write_record:  # temp file + rename, like the map: a killed run never leaves half a record (no fsync:
        # it guards against power loss only, and costs more than labelling a frame)
        with atomic_path(record_path(out_dir, frame.frame_id)) as tmp:
            tmp.write_bytes(label.model_dump_json(indent=1).encode() + b"\n")
    ep = error_path(out_dir, frame.frame_id)
    if ep.exists():
        ep.unlink()
    return len(unlinked)


def _write_error(out_dir: Path, frame_id: str, info: dict[str, Any], teacher_hash: str) -> None:
    atomic_write_json(
        error_path(out_dir, frame_id),
        {
            "frame_id": frame_id,
            **info,
            "teacher_config_hash": teacher_hash,
            "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


@dataclass
class LabelJob:
    """What every worker needs to label and store frames (picklable)."""

    out_dir: Path
    grid: BevGrid
    raster: RasterConfig
    teacher_hash: str
    mkey: str
    fatal: tuple[type[BaseException], ...] = ()  # errors that stop the run (configuration errors)

    def is_fatal(self, exc: BaseException) -> bool:
        return isinstance(exc, self.fatal) or bool(getattr(exc, "fatal", False))


def _iter_batch(
    job: LabelJob, ds: RecordedDataset, teacher: Any, items: Sequence[tuple[int, bool]]
) -> Iterable[FrameOutcome]:
    """Label ``items`` = [(frame index, needs teacher)], yielding each frame's outcome once its files are
    written; frames not needing the teacher re-rasterise their stored record. With ``label_many`` the
    teacher gets the frames of the batch at once, otherwise one ``label`` call per frame."""
    frames = [ds.frame(i) for i, _ in items]
    lazies = [_install_lazy_annotation(f) for f in frames]
    try:
        yield from _label_frames(job, teacher, items, frames)
    finally:
        for lazy in lazies:
            if lazy is not None:
                lazy.close()


def _label_frames(
    job: LabelJob, teacher: Any, items: Sequence[tuple[int, bool]], frames: list[FrameRecord]
) -> Iterable[FrameOutcome]:
    todo = [k for k, (_, need) in enumerate(items) if need]
    batched: dict[int, Any] = {}
    dt_batched = 0.0
    if len(todo) > 1 and hasattr(teacher, "label_many"):
        t0 = time.perf_counter()
        try:
            res = list(teacher.label_many([frames[k] for k in todo]))
            if len(res) != len(todo):
                raise RuntimeError(f"label_many returned {len(res)} results for {len(todo)} frames")
            batched = dict(zip(todo, res, strict=True))
        except Exception as exc:  # the whole batch failed
            if job.is_fatal(exc):
                raise
            batched = dict.fromkeys(todo, exc)
        dt_batched = (time.perf_counter() - t0) / len(todo)
    for k, (frame, (_, need)) in enumerate(zip(frames, items, strict=True)):
        t1 = time.perf_counter()
        key = cache_key(frame.frame_id, job.teacher_hash, job.mkey)
        try:
            if need:
                if k in batched:
                    label = batched[k]
                else:
                    try:
                        label = teacher.label(frame)
                    except Exception as exc:  # fatal ones are re-raised below
                        label = exc
                if isinstance(label, Exception) and job.is_fatal(label):
                    raise label
                if is_error(label):
                    raise _TeacherError(label)
            else:
                label = load_record(job.out_dir, frame.frame_id)
                if label is None:
                    raise RuntimeError(f"record of frame {frame.frame_id!r} vanished")
            paint = getattr(teacher, "paint", None)  # a teacher that paints its own maps
            unlinked = _finish_frame(
                job.out_dir, frame, label, job.grid, job.raster, write_record=need, paint=paint
            )
            yield FrameOutcome(
                frame.frame_id,
                "labelled" if need else "rasterised",
                key,
                dt_batched + time.perf_counter() - t1,
                len(label.objects),
                unlinked,
            )
        except Exception as exc:
            if job.is_fatal(exc):
                raise
            info = error_info(exc.result if isinstance(exc, _TeacherError) else exc)
            try:
                _write_error(job.out_dir, frame.frame_id, info, job.teacher_hash)
            except OSError as werr:  # pragma: no cover - disk trouble
                log.error("cannot write the error record of %s: %s", frame.frame_id, werr)
            yield FrameOutcome(
                frame.frame_id, "error", key, dt_batched + time.perf_counter() - t1, error_kind=info["kind"]
            )


class _TeacherError(Exception):
    def __init__(self, result: Any):
        super().__init__(str(result))
        self.result = result


# ------------------------------------------------------------------------------------------ workers
_W: dict[str, Any] = {}


def _worker_init(job: LabelJob, data_root: str, teacher: Any, numba_threads: int) -> None:
    try:
        import numba

        numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
    except Exception:  # pragma: no cover
        pass
    _W.update(job=job, ds=RecordedDataset(data_root), teacher=teacher)


def _worker_batch(items: list[tuple[int, bool]]) -> list[FrameOutcome]:
    return list(_iter_batch(_W["job"], _W["ds"], _W["teacher"], items))


Batches = list[list[tuple[int, bool]]]
#: ``executor(job, data_root, teacher, batches)`` yields the batches' outcomes (any order and grouping).
Executor = Callable[[LabelJob, str, Any, Batches], Iterable[list[FrameOutcome]]]


def local_executor(
    job: LabelJob, data_root: str, teacher: Any, batches: Batches
) -> Iterable[list[FrameOutcome]]:
    """In this process, one frame at a time (each frame's outcome as soon as its files are written)."""
    ds = RecordedDataset(data_root)
    for b in batches:
        for o in _iter_batch(job, ds, teacher, b):
            yield [o]


def process_executor(workers: int) -> Executor:
    """``workers`` spawned processes (Numba + fork is unsafe), each with ``cpu_count / workers`` Numba
    threads; the teacher is pickled into each."""

    def run(job: LabelJob, data_root: str, teacher: Any, batches: Batches) -> Iterable[list[FrameOutcome]]:
        import multiprocessing as mp

        n_cpu = os.cpu_count() or 1
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context("spawn"),
            initializer=_worker_init,
            initargs=(job, data_root, teacher, max(1, n_cpu // workers)),
        ) as pool:
            yield from pool.map(_worker_batch, batches)

    return run


# ------------------------------------------------------------------------------------------ the run
@dataclass
class LabelRunResult:
    out_dir: Path
    run_dir: Path | None
    shard: tuple[int, int]
    frames_in_shard: int
    labelled: int = 0
    rasterised: int = 0
    skipped: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count
    unlinked_objects: int = 0
    wall_s: float = 0.0
    busy_s: float = 0.0  # seconds spent on frames (summed over workers)
    gpu_seconds: float | None = None

    @property
    def n_errors(self) -> int:
        return sum(self.errors.values())

    @property
    def frames_per_s(self) -> float:
        done = self.labelled + self.rasterised + self.n_errors
        return done / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"], d["run_dir"] = str(self.out_dir), str(self.run_dir) if self.run_dir else None
        d["shard"] = list(self.shard)
        d["frames_per_s"] = self.frames_per_s
        return d


def default_out_dir(data_root: str | Path) -> Path:
    return default_label_dir(data_root)


def plan_frames(
    ds: RecordedDataset,
    out_dir: Path,
    teacher_hash: str,
    mkey: str,
    shard: tuple[int, int],
    limit: int | None = None,
    grid: BevGrid | None = None,
) -> tuple[list[tuple[int, bool]], int, int]:
    """The frames this shard still has to do: ``[(index, needs teacher)]``, the shard size and the number
    already finished. A frame is finished when its last index entry has the current cache key, its record
    carries the teacher's config hash and its map exists (and, given the ``grid``, is sound:
    :func:`map_problem`); it needs only re-rasterising when the record is current but the map key is not,
    the map is missing or corrupt, or the index line is missing (a run killed after writing the record)."""
    i_shard, n_shard = shard
    index = read_index(out_dir)
    ids = ds.table.column("frame_id").to_pylist()
    todo: list[tuple[int, bool]] = []
    in_shard = finished = 0
    for i, fid in enumerate(ids):
        if shard_of(fid, n_shard) != i_shard:
            continue
        in_shard += 1
        if limit is not None and in_shard > limit:
            in_shard -= 1
            break
        # the record (written atomically, carrying the teacher's config hash) says whether the label is
        # current; the index line only whether the map is (it is missing after a kill between the two)
        e = index.get(fid)
        rec = None
        if e is None or e.get("teacher_hash") == teacher_hash:
            rec = load_record(out_dir, fid)
        if rec is None or rec.provenance.config_hash != teacher_hash:
            todo.append((i, True))
            continue
        if e is not None and e.get("key") == cache_key(fid, teacher_hash, mkey):
            mp = map_path(out_dir, fid)
            problem = map_problem(mp, grid) if grid is not None else (None if mp.is_file() else "missing")
            if problem is None:
                finished += 1
                continue
            log.warning("%s: %s; re-rasterising it from its record", mp, problem)
        todo.append((i, False))  # label is current, map is not (or not known to be)
    return todo, in_shard, finished


def _check_folder(out_dir: Path, grid: BevGrid) -> None:
    p = out_dir / LABELLING_JSON
    if not p.is_file():
        return
    try:
        old = json.loads(p.read_text())
    except ValueError:
        return
    if old.get("grid") and old["grid"] != grid.to_dict():
        log.warning("%s: grid changed from %s to %s; maps are re-rasterised", p, old["grid"], grid.to_dict())


def label_dataset(
    data_root: str | Path,
    out_dir: str | Path | None = None,
    teacher: Any = None,
    grid: BevGrid | str = "tiny",
    shard: tuple[int, int] | str = (0, 1),
    *,
    raster: RasterConfig | None = None,
    workers: int = 1,
    batch_size: int = 8,
    limit: int | None = None,
    show_progress: bool = True,
    run_dir: bool = True,
    on_frame: Callable[[FrameOutcome], None] | None = None,
    executor: Executor | None = None,
    fatal: tuple[type[BaseException], ...] = (),
) -> LabelRunResult:
    """Label (this shard of) a recorded data set; see the module docstring.

    ``teacher``: an ``OracleTeacher`` (default) or any :class:`Teacher`; ``grid``: a ``BevGrid`` or preset
    name; ``shard``: ``(i, n)`` or ``"i/n"``; ``workers``: processes (spawned; the teacher must pickle);
    ``batch_size``: frames per task / per ``label_many`` call; ``limit``: at most that many frames of the
    shard (for trial runs); ``run_dir``: write ``runs/<utc>-shard-i-of-n/`` (run.json, log, summary);
    ``executor``: how batches are run (default: in this process, or ``process_executor(workers)``;
    ``teacher.distributed.ray_executor`` for Ray); ``fatal``: exception types that stop the run instead
    of becoming error records (as does any exception with a true ``fatal`` attribute).
    """
    from riskdistill.teacher.oracle import OracleTeacher

    data_root = Path(data_root)
    ds = RecordedDataset(data_root)
    out = Path(out_dir) if out_dir is not None else default_out_dir(data_root)
    teacher = teacher if teacher is not None else OracleTeacher()
    g = resolve_grid(grid)
    rc = raster or RasterConfig()
    if getattr(teacher, "raster_overrides", None):  # e.g. the footprint control: no motion spread
        rc = RasterConfig.from_dict({**rc.to_dict(), **teacher.raster_overrides}, source="teacher raster")
    sh = parse_shard(shard) if isinstance(shard, str) else (int(shard[0]), int(shard[1]))
    if sh[1] < 1 or not 0 <= sh[0] < sh[1]:
        raise ValueError(f"shard {sh}: need n >= 1 and 0 <= i < n")
    t_hash = teacher_config_hash(teacher)
    mkey = map_key(g, rc)
    out.mkdir(parents=True, exist_ok=True)
    _check_folder(out, g)
    settings = {
        "data_root": str(data_root.resolve()),
        "grid": g.to_dict(),
        "raster": rc.model_dump(),
        "map_key": mkey,
        "teacher": teacher_kind(teacher),
        "teacher_class": f"{type(teacher).__module__}.{type(teacher).__qualname__}",
        "teacher_config_hash": t_hash,
        "teacher_config": _teacher_config(teacher),
    }
    atomic_write_json(out / LABELLING_JSON, settings)

    todo, in_shard, finished = plan_frames(ds, out, t_hash, mkey, sh, limit, grid=g)
    result = LabelRunResult(out_dir=out, run_dir=None, shard=sh, frames_in_shard=in_shard, skipped=finished)
    tag = f"shard-{sh[0]}-of-{sh[1]}"
    rdir = None
    handler = None
    if run_dir:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        from riskdistill.runs import create_run_dir

        rdir = create_run_dir(
            out / "runs" / f"{stamp}-{tag}",
            "label",
            {**settings, "shard": list(sh), "workers": workers, "batch_size": batch_size, "limit": limit},
        )
        result.run_dir = rdir
        handler = next(
            (
                h
                for h in logging.getLogger("riskdistill").handlers
                if isinstance(h, logging.FileHandler) and Path(h.baseFilename).parent == rdir.resolve()
            ),
            None,
        )
    log.info(
        "labelling %s -> %s (%s): %d frames to do, %d finished", data_root, out, tag, len(todo), finished
    )
    job = LabelJob(out, g, rc, t_hash, mkey, tuple(fatal))
    gpu0 = getattr(teacher, "gpu_seconds", None)
    index_path = out / INDEX / f"{tag}.jsonl"
    index_path.parent.mkdir(parents=True, exist_ok=True)
    batches = [todo[k : k + max(1, batch_size)] for k in range(0, len(todo), max(1, batch_size))]
    t0 = time.perf_counter()
    try:
        with open(index_path, "a", encoding="utf-8") as index_f, _progress(show_progress) as progress:
            task = progress.add_task(f"labelling {tag}", total=len(todo)) if progress else None

            def consume(outcomes: list[FrameOutcome]) -> None:
                lines = []
                for o in outcomes:
                    if o.status == "error":
                        result.errors[o.error_kind or "error"] = (
                            result.errors.get(o.error_kind or "error", 0) + 1
                        )
                    else:
                        if o.status == "labelled":
                            result.labelled += 1
                        else:
                            result.rasterised += 1
                        result.unlinked_objects += o.unlinked
                        lines.append(
                            json.dumps(
                                {
                                    "frame_id": o.frame_id,
                                    "key": o.key,
                                    "teacher_hash": t_hash,
                                    "map_key": mkey,
                                    "t": time.time(),
                                }
                            )
                        )
                    result.busy_s += o.seconds
                    if on_frame is not None:
                        on_frame(o)
                if lines:
                    index_f.write("\n".join(lines) + "\n")
                    index_f.flush()
                if progress is not None:
                    progress.update(task, advance=len(outcomes))

            run = executor or (
                local_executor if workers <= 1 or len(batches) <= 1 else process_executor(workers)
            )
            for outcomes in run(job, str(data_root), teacher, batches):
                consume(outcomes)
    finally:
        result.wall_s = time.perf_counter() - t0
        gpu1 = getattr(teacher, "gpu_seconds", None)
        if isinstance(gpu0, int | float) and isinstance(gpu1, int | float):
            result.gpu_seconds = float(gpu1 - gpu0)
        if rdir is not None:
            atomic_write_json(rdir / "summary.json", {**result.to_dict(), "finished_utc": _now()})
            if handler is not None:
                logging.getLogger("riskdistill").removeHandler(handler)
                handler.close()
    log.info(
        "%s: %d labelled, %d re-rasterised, %d skipped, %d errors in %.1f s",
        tag,
        result.labelled,
        result.rasterised,
        result.skipped,
        result.n_errors,
        result.wall_s,
    )
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _teacher_config(teacher: Any) -> Any:
    cfg = getattr(teacher, "config", None)
    if cfg is None:
        return None
    try:
        return json.loads(json.dumps(cfg.model_dump(mode="json")))
    except Exception:
        return repr(cfg)


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(show: bool) -> Any:
    if not show:
        return _NoProgress()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class _Speed(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:,.1f} frames/s" if task.speed else "- frames/s")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Speed(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
