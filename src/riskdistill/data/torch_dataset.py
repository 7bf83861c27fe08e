"""PyTorch access to a recorded data set: :class:`DrivingDataset`, :func:`collate_batch`, route splits.

    grid = BevGrid.centered(64.0, 64.0, 0.5, x_offset_m=16.0)
    ds = DrivingDataset("data/train", grid, targets=["future_trajectory", "bev_occupancy"], split="train")
    loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=collate_batch, pin_memory=True)
    for batch in loader:                   # riskdistill.contracts.batch.Batch
        out = model(batch.observation)     # images, calibration, ego state, command, target point
        loss = criterion(out, batch.targets)

Privilege split: the observation is built by :class:`ObservationBuilder`, which reads only the images, the
calibration (``K``, ``T_ego_from_cam``) and the driver-visible columns (ego state, command, target point);
targets are built by separate builders (:mod:`riskdistill.data.targets`) from the ground truth.

Frames are read lazily: only ``manifest.json`` and ``frames.parquet`` are loaded up front; a sample's JPEGs
and ``.npz`` are read in ``__getitem__`` (in the DataLoader worker).

Bad input: a corrupt or truncated image, a missing file, a path outside the data set, or an annotation
field that is missing, of the wrong shape or holds NaN (``storage.check_annotation_arrays``) raises
:class:`~riskdistill.data.targets.DataError` naming the file and the field (through DataLoader workers too);
any other ``ValueError`` / ``IndexError`` / ``KeyError`` / ``TypeError`` / ``OSError`` while a frame becomes a
sample is turned into a ``DataError`` naming its annotation file.
With ``on_error="skip"``, ``ds[i]`` returns the next valid frame (``i + 1``, ``i + 2``, ... wrapping
around; deterministic), the passed-over frame ids are recorded in ``ds.skipped`` (frame id -> message, in
the process that read them) and travel with the sample and the batch (``Batch.skipped``), so a training
loop with worker processes sees them too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch.utils.data import Dataset

from riskdistill.config import StrictConfig
from riskdistill.contracts.agent import AgentInput
from riskdistill.contracts.batch import Batch, Observation, Sample, Targets
from riskdistill.contracts.labels import default_label_dir
from riskdistill.contracts.observation import observation_from_agent_input, resize_images, scale_intrinsics
from riskdistill.data.storage import FrameRecord, RecordedDataset, resolve_inside
from riskdistill.data.targets import (
    TARGET_BUILDERS,
    DataError,
    RiskMapTarget,
    TargetBuilder,
    ann_field,
    make_target,
    rotate_annotation,
)
from riskdistill.geometry import BevGrid

__all__ = [
    "AugmentConfig",
    "DataError",
    "DrivingDataset",
    "ObservationBuilder",
    "collate_batch",
    "split_routes",
]


# ------------------------------------------------------------------------------------------ splits
def _route_u(route_id: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}:{route_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def split_routes(route_ids: Sequence[str], val_fraction: float, seed: int = 0) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...]}``: a route goes to ``val`` when the hash of ``(seed, route_id)``
    maps below ``val_fraction``. Deterministic, independent of the other routes (adding routes never moves
    one) and per route, so a route's frames never straddle the splits. Order follows ``route_ids``
    (duplicates removed). With few routes the val share is only approximately ``val_fraction``."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    out: dict[str, list[str]] = {"train": [], "val": []}
    for r in dict.fromkeys(route_ids):
        out["val" if _route_u(r, seed) < val_fraction else "train"].append(r)
    return out


# ------------------------------------------------------------------------------------------ augment
class AugmentConfig(StrictConfig):
    """Training augmentations; everything is off by default. Draws are deterministic per
    ``(seed, epoch, frame index)`` (``DrivingDataset.set_epoch`` changes them between epochs).

    - photometric jitter: per camera, brightness/contrast/saturation factors uniform in ``1 +- x``;
    - camera drop: each camera independently with ``camera_drop_prob`` (image zeroed,
      ``camera_valid`` False; at least one camera is kept);
    - ego-frame rotation: the ego frame is rotated about z by a uniform angle in
      ``+- rotation_max_deg``; every target, the target point and ``T_ego_from_cam`` are rotated
      consistently (the pixels are unchanged: only the extrinsics move).
    """

    brightness: float = Field(0.0, ge=0.0, le=1.0)
    contrast: float = Field(0.0, ge=0.0, le=1.0)
    saturation: float = Field(0.0, ge=0.0, le=1.0)
    camera_drop_prob: float = Field(0.0, ge=0.0, le=1.0)
    rotation_max_deg: float = Field(0.0, ge=0.0, le=30.0)
    seed: int = 0

    @property
    def active(self) -> bool:
        return any(
            v > 0 for v in (self.brightness, self.contrast, self.saturation, self.camera_drop_prob)
        ) or (self.rotation_max_deg > 0)


def _jitter(imgs: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``imgs [..., N, H, W, 3]`` float in [0, 1]; ``factors [N, 3]`` brightness, contrast, saturation."""
    b, c, s = (factors[:, k, None, None, None] for k in range(3))
    x = imgs * b
    mean = x.mean(axis=(-3, -2, -1), keepdims=True)
    x = (x - mean) * c + mean
    gray = x.mean(axis=-1, keepdims=True)
    x = (x - gray) * s + gray
    return np.clip(x, 0.0, 1.0)


# ------------------------------------------------------------------------------------------ observation
def read_image(root: Path, rel: str, frame_id: str, camera: str, hw: tuple[int, int]) -> np.ndarray:
    """A JPEG as ``[H, W, 3]`` uint8, or :class:`DataError` naming the file (corrupt, truncated, missing,
    of the wrong size, or outside the data set root)."""
    from PIL import Image

    path = resolve_inside(root, rel, "image_paths", f"camera {camera!r} of frame {frame_id!r}")
    try:
        with Image.open(path) as im:
            im.load()  # decodes now: a truncated file raises here
            arr = np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise DataError(
            f"{path}: corrupt or unreadable image (camera {camera!r} of frame {frame_id!r}; "
            f"{type(exc).__name__}: {exc})"
        ) from exc
    if arr.shape[:2] != tuple(hw):
        raise DataError(
            f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, manifest image_hw is {hw[1]}x{hw[0]} "
            f"(camera {camera!r} of frame {frame_id!r})"
        )
    return arr


class ObservationBuilder:
    """Builds the model input from the driver-visible part of a frame only: images, calibration
    (``OBS_ANNOTATION_KEYS``) and ego state / command / target point, as an
    :class:`~riskdistill.contracts.agent.AgentInput` turned into an ``Observation`` by the one conversion
    :func:`~riskdistill.contracts.observation.observation_from_agent_input` (the driver uses the same). It
    never reads ground truth."""

    OBS_ANNOTATION_KEYS = ("K", "T_ego_from_cam")

    def __init__(
        self,
        camera_names: Sequence[str],
        cameras: Sequence[str] | None,
        stored_hw: tuple[int, int],
        image_hw: tuple[int, int] | None,
    ):
        all_names = list(camera_names)
        if cameras is None:
            cameras = all_names
        unknown = [c for c in cameras if c not in all_names]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; this data set has {all_names}")
        self.cameras = list(cameras)
        self.cam_idx = [all_names.index(c) for c in self.cameras]
        self.stored_hw = (int(stored_hw[0]), int(stored_hw[1]))
        self.out_hw = self.stored_hw if image_hw is None else (int(image_hw[0]), int(image_hw[1]))

    def stored_images(self, frame: FrameRecord) -> np.ndarray:
        """``[N_cam, H_stored, W_stored, 3]`` uint8 of the selected cameras, as recorded."""
        return np.stack(
            [
                read_image(
                    frame.root, frame.image_paths[i], frame.frame_id, frame.camera_names[i], self.stored_hw
                )
                for i in self.cam_idx
            ]
        )

    def images(self, frame: FrameRecord) -> np.ndarray:
        """``[N_cam, H_out, W_out, 3]`` uint8 of the selected cameras, resized like the observation."""
        return resize_images(self.stored_images(frame), self.out_hw)

    def agent_input(self, frame: FrameRecord, images: np.ndarray | None = None) -> AgentInput:
        """What a driver would have received at this frame (selected cameras at the stored size). With
        ``images`` (the selected cameras already decoded at the output size, e.g. from a
        :class:`~riskdistill.data.frame_cache.FrameCache`) those images, and ``K`` scaled to match."""
        K = np.asarray(ann_field(frame, "K", "the observation"), dtype=np.float64)[self.cam_idx]
        T = np.asarray(ann_field(frame, "T_ego_from_cam", "the observation"), dtype=np.float64)[self.cam_idx]
        if images is None:
            images = self.stored_images(frame)
        elif tuple(images.shape[1:3]) != self.stored_hw:
            K = scale_intrinsics(K, self.stored_hw, tuple(images.shape[1:3]))
        return AgentInput(
            timestamp_s=frame.timestamp_s,
            ego=frame.ego,
            command=frame.command,
            target_point_ego=np.asarray(frame.target_point_ego, dtype=np.float64),
            images=images,
            K=K,
            T_ego_from_cam=T,
            camera_names=tuple(self.cameras),
        )

    def observation(self, frame: FrameRecord, images: np.ndarray | None = None) -> Observation:
        """The unbatched observation of ``frame`` (uint8 images ``[N_cam, 3, H_out, W_out]``); ``images``:
        see :meth:`agent_input`."""
        return observation_from_agent_input(self.agent_input(frame, images), None, self.out_hw)


# ------------------------------------------------------------------------------------------ dataset
class DrivingDataset(Dataset):
    """A recorded data set as a map-style torch ``Dataset`` of :class:`~riskdistill.contracts.batch.Sample`.

    - ``root``: a folder written by ``riskdistill sim record``;
    - ``grid``: the BEV grid of the map targets;
    - ``targets``: target builder names (``targets.TARGET_BUILDERS``) or builder objects; ``"risk_map"`` by
      name reads ``<root>/labels/risk`` (pass ``RiskMapTarget(label_dir)`` for another folder);
    - ``cameras``: a subset / order of the manifest's cameras (default: all);
    - ``image_hw``: resize the images (K is scaled to match);
    - ``image_dtype``: ``"float"`` (float32 in [0, 1]) or ``"uint8"`` (4x less to move; normalise on the GPU);
    - ``prev_frames``: earlier frames of the same route delivered as ``prev_images`` (oldest first);
    - ``augment``: :class:`AugmentConfig` (default: none);
    - ``split``: ``"train"``, ``"val"`` or None (all), routes assigned by :func:`split_routes`
      with ``val_fraction`` and ``split_seed``;
    - ``on_error``: ``"raise"`` (default) or ``"skip"`` (see the module docstring);
    - ``image_cache``: a :class:`~riskdistill.data.frame_cache.FrameCache` of this data set at ``image_hw``:
      images are read from it instead of decoded from JPEG (the same pixels, so the same samples).
    """

    def __init__(
        self,
        root: str | Path,
        grid: BevGrid,
        targets: Sequence[str | TargetBuilder],
        cameras: list[str] | None = None,
        image_hw: tuple[int, int] | None = None,
        prev_frames: int = 0,
        augment: AugmentConfig | None = None,
        split: str | None = None,
        on_error: Literal["raise", "skip"] = "raise",
        *,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        image_dtype: Literal["float", "uint8"] = "float",
        image_cache: Any = None,
    ):
        self.root = Path(root)
        self.records = RecordedDataset(self.root)
        self.grid = grid
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if image_dtype not in ("float", "uint8"):
            raise ValueError(f"image_dtype must be 'float' or 'uint8', got {image_dtype!r}")
        if prev_frames < 0:
            raise ValueError(f"prev_frames must be >= 0, got {prev_frames}")
        self.on_error = on_error
        self.image_dtype = image_dtype
        self.prev_frames = int(prev_frames)
        self.augment = augment if augment is not None and augment.active else None
        self.epoch = 0

        self.builders: list[TargetBuilder] = []
        for t in targets:
            if isinstance(t, str):
                if t not in TARGET_BUILDERS:
                    raise ValueError(f"unknown target {t!r}; valid targets: {sorted(TARGET_BUILDERS)}")
                b = RiskMapTarget(default_label_dir(self.root)) if t == "risk_map" else make_target(t)
            else:
                b = t
            if isinstance(b, RiskMapTarget):
                b.check(grid)  # fail now, not in a worker
            self.builders.append(b)
        names = [b.name for b in self.builders]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate targets {names}")

        m = self.records.manifest
        self.obs = ObservationBuilder(self.records.camera_names, cameras, tuple(m["image_hw"]), image_hw)
        self.image_cache = image_cache
        if image_cache is not None:
            image_cache.check_compatible(self.root, self.obs.out_hw, self.records.camera_names)

        self._route_ids: list[str] = self.records.table.column("route_id").to_pylist()
        self._steps: list[int] = self.records.table.column("step").to_pylist()
        if split is None:
            self.indices = list(range(len(self.records)))
        elif split in ("train", "val"):
            routes = split_routes(self._route_ids, val_fraction, split_seed)[split]
            keep = set(routes)
            self.indices = [i for i, r in enumerate(self._route_ids) if r in keep]
        else:
            raise ValueError(f"split must be 'train', 'val' or None, got {split!r}")
        self.skipped: dict[str, str] = {}

    # -------------------------------------------------------------------------------------- protocol
    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        """Changes the augmentation draws and tells every target builder with a ``set_epoch`` method (e.g.
        the shuffled control's per-epoch derangement); call it before each epoch (workers see it when
        re-created: see :attr:`epoch_dependent`)."""
        self.epoch = int(epoch)
        for b in self.builders:
            set_builder_epoch = getattr(b, "set_epoch", None)
            if set_builder_epoch is not None:
                set_builder_epoch(self.epoch)

    @property
    def epoch_dependent(self) -> bool:
        """Whether samples change with :meth:`set_epoch` (augmentation, or a builder with ``set_epoch``):
        DataLoader workers must then be re-created every epoch (not persistent)."""
        return self.augment is not None or any(hasattr(b, "set_epoch") for b in self.builders)

    @property
    def route_ids(self) -> list[str]:
        """The routes of this split, in data set order."""
        return list(dict.fromkeys(self._route_ids[i] for i in self.indices))

    @property
    def scenarios(self) -> list[str]:
        """The scenario type of each frame of this split, in index order."""
        column = self.records.table.column("scenario").to_pylist()
        return [column[i] for i in self.indices]

    def frame_id(self, i: int) -> str:
        return self.records.table.column("frame_id")[self.indices[i]].as_py()

    def __getitem__(self, i: int) -> Sample:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} samples")
        i %= n
        if self.on_error == "raise":
            return self.load(self.indices[i])
        passed: list[str] = []
        for k in range(n):
            idx = self.indices[(i + k) % n]
            try:
                sample = self.load(idx)
            except DataError as exc:
                fid = self.records.table.column("frame_id")[idx].as_py()
                if fid not in self.skipped:
                    warnings.warn(f"skipping frame {fid!r}: {exc}", stacklevel=2)
                self.skipped[fid] = str(exc)
                passed.append(fid)
                continue
            sample.skipped = passed
            return sample
        raise DataError(f"{self.root}: every one of the {n} frames failed to load; first: {passed[:1]}")

    # -------------------------------------------------------------------------------------- loading
    def _prev_indices(self, idx: int) -> tuple[list[int], list[bool]]:
        """Record indices of the ``prev_frames`` earlier frames of the route (oldest first), padded with
        the oldest available one (valid False)."""
        route = self._route_ids[idx]
        found = []
        j = idx - 1
        while len(found) < self.prev_frames and j >= 0 and self._route_ids[j] == route:
            found.append(j)
            j -= 1
        found.reverse()
        pad = self.prev_frames - len(found)
        first = found[0] if found else idx
        return [first] * pad + found, [False] * pad + [True] * len(found)

    def _cached_images(self, idx: int) -> np.ndarray | None:
        """The selected cameras of record ``idx`` from the frame cache (None without one)."""
        if self.image_cache is None:
            return None
        return self.image_cache.images(idx, self.obs.cam_idx)

    def _images(self, idx: int) -> np.ndarray:
        """``[N_cam, H_out, W_out, 3]`` uint8 of record ``idx`` (from the cache when there is one)."""
        cached = self._cached_images(idx)
        return cached if cached is not None else self.obs.images(self.records.frame(idx))

    def load(self, idx: int) -> Sample:
        """The sample of record index ``idx`` (no skipping)."""
        frame = self.records.frame(idx)
        lazy = _LazyAnnotation(frame.annotation_file(), frame.frame_id)
        frame.__dict__["annotation"] = lazy  # read key by key instead of the whole .npz
        try:
            return self._load(idx, frame)
        except DataError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, OSError) as exc:  # data the checks let through
            raise DataError(
                f"{lazy.path}: frame {frame.frame_id!r} cannot be turned into a sample "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            lazy.close()

    def _load(self, idx: int, frame: FrameRecord) -> Sample:
        aug = self.augment
        rng = np.random.default_rng([aug.seed, self.epoch, idx]) if aug is not None else None
        n_cam = len(self.obs.cameras)

        theta = 0.0
        if aug is not None and aug.rotation_max_deg > 0:
            theta = math.radians(float(rng.uniform(-aug.rotation_max_deg, aug.rotation_max_deg)))
            frame = _rotated_frame(frame, theta)

        obs = self.obs.observation(frame, self._cached_images(idx))
        imgs = [obs.images.permute(0, 2, 3, 1).numpy()]  # [N, H, W, 3] uint8
        prev_valid = None
        if self.prev_frames:
            prev_idx, prev_valid = self._prev_indices(idx)
            imgs = [self._images(j) for j in prev_idx] + imgs
        stack = np.stack(imgs)  # [T + 1, N, H, W, 3] uint8

        camera_valid = obs.camera_valid.numpy().copy()
        if aug is not None:
            if aug.brightness or aug.contrast or aug.saturation:
                amp = np.array([aug.brightness, aug.contrast, aug.saturation])
                factors = 1.0 + rng.uniform(-1.0, 1.0, size=(n_cam, 3)) * amp
                stack = (_jitter(stack.astype(np.float32) / 255.0, factors) * 255.0 + 0.5).astype(np.uint8)
            if aug.camera_drop_prob > 0:
                drop = rng.random(n_cam) < aug.camera_drop_prob
                if drop.all():
                    drop[rng.integers(n_cam)] = False
                camera_valid = ~drop
                stack[:, drop] = 0

        t = torch.from_numpy(np.ascontiguousarray(stack)).permute(0, 1, 4, 2, 3)  # [T + 1, N, 3, H, W]
        t = t.contiguous() if self.image_dtype == "uint8" else t.to(torch.float32).mul_(1.0 / 255.0)
        observation = dataclasses.replace(
            obs,
            images=t[-1],
            camera_valid=torch.from_numpy(camera_valid),
            prev_images=t[:-1] if self.prev_frames else None,
            prev_valid=torch.tensor(prev_valid, dtype=torch.bool) if self.prev_frames else None,
        )
        out: dict[str, torch.Tensor] = {}
        valid = {f.name for f in dataclasses.fields(Targets)}
        for b in self.builders:
            per_camera = getattr(b, "per_camera", ())
            for k, v in b.build(frame, self.grid).items():
                if k not in valid:
                    raise ValueError(
                        f"target {b.name!r} built {k!r}, which is not a Targets field {sorted(valid)}"
                    )
                if k in per_camera:  # labels of every camera -> the model's cameras, in its order
                    v = np.asarray(v)[self.obs.cam_idx]
                out[k] = torch.from_numpy(np.ascontiguousarray(v))
        return Sample(observation=observation, targets=Targets(**out), frame_id=frame.frame_id)


class _LazyAnnotation(Mapping):
    """A frame's ``.npz`` read array by array on first access (a sample needs ~15 of its ~47 arrays);
    unreadable files or arrays raise :class:`DataError` naming the file and the field."""

    def __init__(self, path: Path, frame_id: str):
        self.path = path
        try:
            self._z = np.load(path, allow_pickle=False)
            self._files = list(self._z.files)
        except Exception as exc:
            raise DataError(
                f"{path}: unreadable annotation file of frame {frame_id!r} ({type(exc).__name__}: {exc})"
            ) from exc
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            if key not in self._files:
                raise KeyError(key)
            try:
                self._cache[key] = self._z[key]
            except Exception as exc:
                raise DataError(
                    f"{self.path}: annotation field {key!r} is unreadable ({type(exc).__name__}: {exc})"
                ) from exc
        return self._cache[key]

    def __contains__(self, key: object) -> bool:
        return key in self._files

    def __iter__(self):
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def close(self) -> None:
        self._z.close()


def _rotated_frame(frame: FrameRecord, theta: float) -> FrameRecord:
    """A copy of ``frame`` seen from an ego frame rotated by ``theta`` (annotation and target point)."""
    c, s = math.cos(theta), math.sin(theta)
    tp = np.asarray(frame.target_point_ego, dtype=np.float64)
    new = dataclasses.replace(
        frame, target_point_ego=np.array([c * tp[0] - s * tp[1], s * tp[0] + c * tp[1]])
    )
    ann_field(frame, "T_ego_from_cam", "the rotation augmentation")  # reads the file (DataError if bad)
    new.__dict__["annotation"] = rotate_annotation(dict(frame.annotation), theta)
    return new


# ------------------------------------------------------------------------------------------ collate
def _stack(values: list[torch.Tensor | None], name: str, frame_ids: list[str]) -> torch.Tensor | None:
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        raise ValueError(f"collate_batch: field {name!r} is missing in some samples")
    shapes = [tuple(v.shape) for v in values]  # type: ignore[union-attr]
    if len(set(shapes)) > 1:
        odd = next(k for k, sh in enumerate(shapes) if sh != shapes[0])
        raise DataError(
            f"collate_batch: field {name!r} has shape {shapes[odd]} in frame {frame_ids[odd]!r} but "
            f"{shapes[0]} in frame {frame_ids[0]!r} (riskdistill data validate names the file)"
        )
    return torch.stack(values)


def collate_batch(samples: list[Sample]) -> Batch:
    """Stacks :class:`Sample` objects into a :class:`Batch` (use as ``DataLoader(collate_fn=...)``)."""
    if not samples:
        raise ValueError("collate_batch: empty list")

    ids = [s.frame_id for s in samples]

    def stack_dc(cls, objs):
        return cls(
            **{
                f.name: _stack([getattr(o, f.name) for o in objs], f.name, ids)
                for f in dataclasses.fields(cls)
            }
        )

    return Batch(
        observation=stack_dc(Observation, [s.observation for s in samples]),
        targets=stack_dc(Targets, [s.targets for s in samples]),
        frame_ids=[s.frame_id for s in samples],
        skipped=[f for s in samples for f in s.skipped],
    )
