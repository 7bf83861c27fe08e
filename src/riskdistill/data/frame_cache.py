"""Decoded-frame cache: every frame's camera images decoded once, resized to the model's input size and kept
as uint8 in a memory-mapped ``.npy``, so training reads pixels instead of decoding JPEGs every epoch.

    cache = FrameCache.open("data/train", image_hw=(64, 176))     # builds it on first use
    imgs = cache.images(record_index)      # [N_cam, H, W, 3] uint8: all manifest cameras, manifest order
    ds = DrivingDataset("data/train", grid, targets, image_hw=(64, 176), image_cache=cache)

The pixels are exactly those of the data set's own path (the same JPEG decoder, the same PIL bilinear resize
of :func:`~riskdistill.contracts.observation.resize_images`), so training with and without the cache gives
the same losses.

Layout (``cache_dir`` defaults to ``<root>/cache/frames``)::

    <cache_dir>/<key>/images.npy     [n_frames, n_cam, H, W, 3] uint8, frames.parquet order
    <cache_dir>/<key>/progress.json  while building: frames done, unreadable frames (atomic; resumable)
    <cache_dir>/<key>/cache.json     written last (atomic): the cache is complete; its inputs and shape

The key hashes what the pixels depend on: the cache version, the image size, the camera names, the
manifest's sha256 of ``frames.parquet`` and of every image (or, for an image the manifest does not list, its
size and modification time), in frame order. A data set that changed therefore gets a new key and a new
cache; on opening, a complete cache is also checked against the image files' sizes and modification times
at build time, and rebuilt when they differ (a cache is never trusted over its data set). Copying a data set
without preserving modification times therefore rebuilds its cache once. Caches of the same data set and
image size under other keys are stale and removed when a new one is complete.

A frame whose images cannot be read is recorded with the reader's message and raises the same
:class:`~riskdistill.data.storage.DataError` on access (``DrivingDataset(on_error="skip")`` skips it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.contracts.observation import resize_images
from riskdistill.data import format as fmt
from riskdistill.data.storage import DataError, RecordedDataset
from riskdistill.io import atomic_write_json, load_json

CACHE_VERSION = 1
IMAGES = "images.npy"
PROGRESS = "progress.json"
COMPLETE = "cache.json"
DEFAULT_SUBDIR = ("cache", "frames")
CHUNK_FRAMES = 128  # progress is saved every this many frames


def default_cache_dir(root: str | Path) -> Path:
    """``<root>/cache/frames``."""
    return Path(root).joinpath(*DEFAULT_SUBDIR)


def _image_paths(records: RecordedDataset) -> list[list[str]]:
    return [list(p) for p in records.table.column("image_paths").to_pylist()]


def _stat_digest(root: Path, paths: list[list[str]]) -> str:
    """A hash of every image file's size and modification time (missing files count as such)."""
    h = hashlib.sha256()
    for row in paths:
        for rel in row:
            try:
                st = os.stat(root / rel)
                h.update(f"{rel}:{st.st_size}:{st.st_mtime_ns};".encode())
            except OSError:
                h.update(f"{rel}:missing;".encode())
    return h.hexdigest()


def cache_key(records: RecordedDataset, image_hw: tuple[int, int]) -> tuple[str, dict[str, Any]]:
    """``(key, inputs)``: the hash that names a data set's cache at ``image_hw`` (module docstring)."""
    m = records.manifest
    files: dict[str, str] = m.get("files") or {}
    paths = _image_paths(records)
    h = hashlib.sha256()
    inputs = {
        "version": CACHE_VERSION,
        "image_hw": [int(image_hw[0]), int(image_hw[1])],
        "stored_hw": [int(v) for v in m["image_hw"]],
        "camera_names": list(records.camera_names),
        "frames_parquet_sha256": files.get(fmt.FRAMES),
        "n_frames": len(paths),
        "resize": "PIL bilinear (riskdistill.contracts.observation.resize_images)",
    }
    h.update(json.dumps(inputs, sort_keys=True).encode())
    for row in paths:
        for rel in row:
            digest = files.get(rel)
            if digest is None:  # not listed: fall back on the file's size and time
                try:
                    st = os.stat(records.root / rel)
                    digest = f"stat:{st.st_size}:{st.st_mtime_ns}"
                except OSError:
                    digest = "missing"
            h.update(f"{rel}={digest};".encode())
    return h.hexdigest()[:24], inputs


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (another process building the same cache waits for it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class FrameCache:
    """A complete decoded-frame cache (open it with :meth:`open`). Picklable: DataLoader workers map the
    file themselves."""

    def __init__(self, folder: Path, root: Path, image_hw: tuple[int, int], meta: dict[str, Any]):
        self.folder = Path(folder)
        self.root = Path(root)
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        self.meta = meta
        self.camera_names = tuple(meta["inputs"]["camera_names"])
        self.errors: dict[int, str] = {int(k): v for k, v in meta.get("errors", {}).items()}
        self._array: np.ndarray | None = None

    # -------------------------------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        root: str | Path,
        image_hw: tuple[int, int],
        cache_dir: str | Path | None = None,
        *,
        show_progress: bool = False,
    ) -> FrameCache:
        """The cache of data set ``root`` at ``image_hw``: opened when complete and current, else built (or
        its interrupted build resumed) under a lock. A cache whose image files changed since it was built is
        rebuilt."""
        root = Path(root)
        records = RecordedDataset(root)
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(root)
        key, inputs = cache_key(records, image_hw)
        folder = cache_dir / key
        with _locked(cache_dir / f"{key}.lock"):
            meta = cls._current_meta(folder, records, key)
            if meta is None:
                meta = _build(folder, records, key, inputs, show_progress)
                _remove_stale(cache_dir, key, root, inputs["image_hw"])
        return cls(folder, root, image_hw, meta)

    @staticmethod
    def _current_meta(folder: Path, records: RecordedDataset, key: str) -> dict[str, Any] | None:
        """The complete cache's ``cache.json`` when it matches the data set, else None (after removing it)."""
        path = folder / COMPLETE
        if not path.is_file():
            return None
        try:
            meta = load_json(path)
            ok = (
                meta.get("key") == key
                and meta.get("stat_sha256") == _stat_digest(records.root, _image_paths(records))
                and (folder / IMAGES).is_file()
            )
        except (ValueError, OSError):
            ok = False
        if ok:
            return meta
        shutil.rmtree(folder, ignore_errors=True)  # stale or damaged: never trusted
        return None

    # -------------------------------------------------------------------------------------- reading
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_array"] = None
        return state

    @property
    def array(self) -> np.ndarray:
        """``[n_frames, n_cam, H, W, 3]`` uint8, memory-mapped read-only."""
        if self._array is None:
            self._array = np.load(self.folder / IMAGES, mmap_mode="r")
        return self._array

    def __len__(self) -> int:
        return int(self.meta["shape"][0])

    def images(self, index: int, cameras: list[int] | None = None) -> np.ndarray:
        """Frame ``index`` (``frames.parquet`` order): ``[N, H, W, 3]`` uint8 of ``cameras`` (indices into
        :attr:`camera_names`; default all), a copy. DataError when its images could not be read."""
        if index in self.errors:
            raise DataError(self.errors[index])
        a = self.array[index]
        return np.array(a if cameras is None else a[cameras])

    def check_compatible(self, root: str | Path, image_hw: tuple[int, int], camera_names: tuple[str, ...]):
        """ValueError naming both values when this cache is not the cache of ``root`` at ``image_hw``."""
        if Path(root).resolve() != self.root.resolve():
            raise ValueError(f"frame cache {self.folder} belongs to data set {self.root}, not {root}")
        if tuple(image_hw) != self.image_hw:
            raise ValueError(
                f"frame cache {self.folder} holds images of {list(self.image_hw)}, the data set is read at "
                f"{list(image_hw)}"
            )
        if tuple(camera_names) != self.camera_names:
            raise ValueError(
                f"frame cache {self.folder} holds cameras {list(self.camera_names)}, the data set has "
                f"{list(camera_names)}"
            )


# ------------------------------------------------------------------------------------------ building
def _read_frame(records: RecordedDataset, row: list[str], frame_id: str) -> np.ndarray:
    from riskdistill.data.torch_dataset import read_image

    hw = tuple(int(v) for v in records.manifest["image_hw"])
    cams = records.camera_names
    return np.stack([read_image(records.root, rel, frame_id, cams[i], hw) for i, rel in enumerate(row)])


def _build(
    folder: Path, records: RecordedDataset, key: str, inputs: dict[str, Any], show_progress: bool
) -> dict[str, Any]:
    """Fill ``folder/images.npy`` frame by frame, saving progress every :data:`CHUNK_FRAMES` frames (a killed
    build resumes there), then write ``cache.json``."""
    h, w = inputs["image_hw"]
    paths = _image_paths(records)
    frame_ids = records.table.column("frame_id").to_pylist()
    shape = (len(paths), len(records.camera_names), h, w, 3)
    folder.mkdir(parents=True, exist_ok=True)
    images_path, progress_path = folder / IMAGES, folder / PROGRESS
    stat = _stat_digest(records.root, paths)
    done, errors = 0, {}
    if images_path.is_file() and progress_path.is_file():
        try:
            prog = load_json(progress_path)
            if prog.get("key") == key and prog.get("stat_sha256") == stat:
                done, errors = int(prog["done"]), dict(prog.get("errors", {}))
        except (ValueError, OSError, KeyError):
            done, errors = 0, {}
    try:
        arr = np.lib.format.open_memmap(images_path, mode="r+" if done else "w+", dtype=np.uint8, shape=shape)
    except (ValueError, OSError):  # a damaged partial file: start again
        done, errors = 0, {}
        arr = np.lib.format.open_memmap(images_path, mode="w+", dtype=np.uint8, shape=shape)
    if arr.shape != shape:
        done, errors = 0, {}
        del arr
        arr = np.lib.format.open_memmap(images_path, mode="w+", dtype=np.uint8, shape=shape)
    t0 = time.perf_counter()
    for start in range(done, len(paths), CHUNK_FRAMES):
        stop = min(start + CHUNK_FRAMES, len(paths))
        for i in range(start, stop):
            try:
                arr[i] = resize_images(_read_frame(records, paths[i], frame_ids[i]), (h, w))
            except DataError as exc:
                errors[str(i)] = str(exc)
                arr[i] = 0
        arr.flush()
        atomic_write_json(progress_path, {"key": key, "stat_sha256": stat, "done": stop, "errors": errors})
        if show_progress:
            print(f"frame cache {folder.name}: {stop}/{len(paths)} frames", flush=True)
    del arr
    meta = {
        "key": key,
        "inputs": inputs,
        "root": str(records.root.resolve()),
        "shape": list(shape),
        "stat_sha256": stat,
        "errors": errors,
        "build_s": round(time.perf_counter() - t0, 3),
    }
    atomic_write_json(folder / COMPLETE, meta)
    progress_path.unlink(missing_ok=True)
    return meta


def _remove_stale(cache_dir: Path, key: str, root: Path, image_hw: list[int]) -> None:
    """Remove other complete caches of the same data set and image size (they no longer match it)."""
    for meta_path in cache_dir.glob(f"*/{COMPLETE}"):
        folder = meta_path.parent
        if folder.name == key:
            continue
        try:
            meta = load_json(meta_path)
        except (ValueError, OSError):
            continue
        same_data = meta.get("root") == str(root.resolve())
        if same_data and meta.get("inputs", {}).get("image_hw") == list(image_hw):
            shutil.rmtree(folder, ignore_errors=True)
            (cache_dir / f"{folder.name}.lock").unlink(missing_ok=True)
