"""Reading and checking a recorded data set (format: :mod:`riskdistill.data.format`).

    ds = RecordedDataset("data/train")
    rec = ds.frame(123)              # metadata now; images and annotations on first access
    rec.images                       # [N_cam, H, W, 3] uint8
    rec.annotation["actor_box2d"]    # any key of riskdistill.data.format.ANNOTATION_KEYS
    problems = validate_dataset("data/train")    # [] when the data set is sound

Only ``manifest.json`` and the metadata table ``frames.parquet`` are read up front; a frame's JPEGs and
``.npz`` file are read when that frame asks for them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from riskdistill.contracts.agent import AgentInput, EgoState
from riskdistill.data import format as fmt
from riskdistill.io import load_json_object
from riskdistill.types import Command


class DatasetError(ValueError):
    """A folder that is not a readable recorded data set (the message names the file)."""


class DataError(DatasetError):
    """A frame, clip or annotation that cannot be read or converted; the message names the file and field."""


def resolve_inside(root: Path, rel: str, field: str, source: str) -> Path:
    """``root / rel`` resolved, or a :class:`DataError` when ``rel`` is not a relative path inside the data
    set (absolute paths, ``..`` escapes and symbolic links leading out are refused). Every reader of a
    frame's files goes through it (images, annotations, labelling, training, validation)."""
    try:
        if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
            raise ValueError("not a relative path")
        base = Path(root).resolve()
        path = (base / rel).resolve()
        if not path.is_relative_to(base):
            raise ValueError("outside")
    except (ValueError, OSError, RuntimeError):  # also a NUL byte or a symbolic-link loop
        raise DataError(
            f"{source}: field {field!r} = {rel!r} points outside the data set root {root}"
        ) from None
    return path


FRAME_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[0-9]+$")


def check_frame_ids(frame_ids: Sequence[Any], where: str) -> list[str]:
    """Problems with the frame ids of a table: each must be ``<route_id>/<step>`` (letters, digits,
    ``_ . -``), because label folders use it as a file path (``maps/<frame_id>.npy``)."""
    bad = [(i, f) for i, f in enumerate(frame_ids) if not isinstance(f, str) or not FRAME_ID_PATTERN.match(f)]
    if not bad:
        return []
    i, f = bad[0]
    more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
    return [f"{where}: frame_id {f!r} (row {i}){more} is not '<route_id>/<step>' (letters, digits, _ . -)"]


def _load_manifest(root: Path) -> dict[str, Any]:
    path = root / fmt.MANIFEST
    if not path.is_file():
        raise DatasetError(
            f"{path}: missing; {root} is not a recorded data set (or its recording never finished)"
        )
    manifest = load_json_object(path, DatasetError)
    version = manifest.get("format_version")
    if version not in fmt.KNOWN_VERSIONS:
        raise DatasetError(
            f"{path}: format_version {version!r} is unknown; "
            f"this riskdistill reads {list(fmt.KNOWN_VERSIONS)}"
        )
    return manifest


@dataclass
class FrameRecord:
    """One recorded frame: its metadata row, with the images and the annotation loaded lazily."""

    root: Path
    index: int
    frame_id: str
    route_id: str
    scenario: str
    seed: int
    step: int
    timestamp_s: float
    ego: EgoState
    ego_pose_world: np.ndarray  # [3] x, y, yaw of the rear axle
    command: Command
    target_point_ego: np.ndarray  # [2]
    weather: dict[str, float]
    camera_names: tuple[str, ...]
    image_paths: tuple[str, ...]  # relative to root, in camera_names order
    annotation_path: str
    row: dict[str, Any] = field(repr=False)  # every column of frames.parquet
    dims: dict[str, int] = field(default_factory=dict, repr=False)  # known annotation sizes (N cameras, ...)

    def image_file(self, camera: str | int) -> Path:
        """The path of one camera's image (a :class:`DataError` if it points outside the data set)."""
        i = camera if isinstance(camera, int) else self.camera_names.index(camera)
        return resolve_inside(self.root, self.image_paths[i], "image_paths", f"frame {self.frame_id!r}")

    def annotation_file(self) -> Path:
        """The path of the annotation file (a :class:`DataError` if it points outside the data set)."""
        return resolve_inside(self.root, self.annotation_path, "annotation_path", f"frame {self.frame_id!r}")

    def image(self, camera: str | int) -> np.ndarray:
        """One camera's image ``[H, W, 3]`` uint8 (read from disk on every call); a :class:`DataError`
        naming the file when it is missing, outside the data set or does not decode."""
        from PIL import Image

        path = self.image_file(camera)
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except Exception as exc:
            raise DataError(
                f"{path}: corrupt or unreadable image of frame {self.frame_id!r} "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    @cached_property
    def images(self) -> np.ndarray:
        """All cameras ``[N_cam, H, W, 3]`` uint8 (read once)."""
        return np.stack([self.image(i) for i in range(len(self.image_paths))])

    @cached_property
    def annotation(self) -> dict[str, np.ndarray]:
        """Every array of the frame's ``.npz`` file (read once, no pickle)."""
        return self._read_annotation(None)

    def annotation_arrays(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Only ``keys`` of the frame's ``.npz`` (from :attr:`annotation` when it is already read, else
        reading just those arrays: a fraction of the full file's cost). A :class:`DataError` names the file
        when it is unreadable or lacks a key."""
        ann = self.annotation if "annotation" in self.__dict__ else self._read_annotation(keys)
        missing = [k for k in keys if k not in ann]
        if missing:
            raise DataError(
                f"{self.annotation_file()}: annotation of frame {self.frame_id!r} lacks {missing}"
            )
        return {k: ann[k] for k in keys}

    def _read_annotation(self, keys: Sequence[str] | None) -> dict[str, np.ndarray]:
        """The arrays ``keys`` of the ``.npz`` that it has (None: all); DataError naming the file."""
        path = self.annotation_file()
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in (z.files if keys is None else keys) if k in z.files}
        except Exception as exc:
            raise DataError(
                f"{path}: unreadable annotation file of frame {self.frame_id!r} ({type(exc).__name__}: {exc})"
            ) from exc

    def to_agent_input(self) -> AgentInput:
        """What a driver would have seen at this frame (for open-loop evaluation)."""
        ann = self.annotation
        return AgentInput(
            timestamp_s=self.timestamp_s,
            ego=self.ego,
            command=self.command,
            target_point_ego=self.target_point_ego.copy(),
            images=self.images,
            K=ann["K"],
            T_ego_from_cam=ann["T_ego_from_cam"],
            camera_names=self.camera_names,
        )


class RecordedDataset:
    """Random access to the frames of a recorded data set, by index in ``frames.parquet`` order."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest = _load_manifest(self.root)
        mpath = self.root / fmt.MANIFEST
        names = self.manifest.get("camera_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise DatasetError(f"{mpath}: field 'camera_names' must be a non-empty list of names: {names}")
        hw = self.manifest.get("image_hw")
        if not (isinstance(hw, list) and len(hw) == 2 and all(isinstance(v, int) and v > 0 for v in hw)):
            raise DatasetError(f"{mpath}: field 'image_hw' must be [height, width] in pixels, got {hw!r}")
        path = self.root / fmt.FRAMES
        if not path.is_file():
            raise DatasetError(f"{path}: missing")
        try:
            self.table = pq.read_table(path)
        except Exception as exc:  # truncated, garbage or not Parquet at all
            raise DatasetError(
                f"{path}: unreadable frame table ({type(exc).__name__}: {exc}); the file is corrupt or "
                f"truncated (riskdistill data validate {self.root} lists every problem)"
            ) from None
        missing = [c for c in fmt.FRAME_SCHEMA.names if c not in self.table.column_names]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}")
        self.camera_names: tuple[str, ...] = tuple(names)
        frame_ids = self.table.column("frame_id").to_pylist()
        bad = check_frame_ids(frame_ids, str(path))
        if bad:
            raise DatasetError(bad[0])
        self._index = {fid: i for i, fid in enumerate(frame_ids)}
        self.ann_dims = annotation_dims(self.manifest)

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> FrameRecord:
        return self.frame(i)

    def has(self, frame_id: str) -> bool:
        return frame_id in self._index

    def index_of(self, frame_id: str) -> int:
        try:
            return self._index[frame_id]
        except KeyError:
            raise KeyError(f"no frame {frame_id!r} in {self.root}") from None

    def frame(self, i: int) -> FrameRecord:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame index {i} out of range for {n} frames")
        i %= n
        row = self.table.slice(i, 1).to_pylist()[0]
        return FrameRecord(
            root=self.root,
            index=i,
            frame_id=row["frame_id"],
            route_id=row["route_id"],
            scenario=row["scenario"],
            seed=int(row["seed"]),
            step=int(row["step"]),
            timestamp_s=float(row["timestamp_s"]),
            ego=EgoState(
                speed_mps=row["ego_speed_mps"],
                accel_mps2=row["ego_accel_mps2"],
                yaw_rate_radps=row["ego_yaw_rate_radps"],
                steer=row["ego_steer"],
            ),
            ego_pose_world=np.array([row[c] for c in fmt.POSE_COLUMNS], dtype=np.float64),
            command=Command(int(row["command"])),
            target_point_ego=np.array([row["target_point_ego_x"], row["target_point_ego_y"]]),
            weather={k[len("weather_") :]: v for k, v in row.items() if k.startswith("weather_")},
            camera_names=self.camera_names,
            image_paths=tuple(row["image_paths"]),
            annotation_path=row["annotation_path"],
            row=row,
            dims=dict(self.ann_dims),
        )

    def info(self) -> dict[str, Any]:
        """Counts, scenarios, size on disk and the rig, for ``riskdistill data info``."""
        m = self.manifest
        scen = self.table.column("scenario").to_pylist()
        per_scenario: dict[str, int] = {}
        for s in scen:
            per_scenario[s] = per_scenario.get(s, 0) + 1
        routes_per_scenario: dict[str, int] = {}
        for r in m.get("routes", []):
            routes_per_scenario[r["scenario"]] = routes_per_scenario.get(r["scenario"], 0) + 1
        return {
            "root": str(self.root),
            "format_version": m["format_version"],
            "suite": m.get("suite", {}).get("name"),
            "routes": m["counts"]["routes"],
            "suite_routes": m["counts"].get("suite_routes"),
            "failed_routes": [f["route_id"] for f in m.get("failed_routes", [])],
            "frames": len(self),
            "images": len(self) * len(self.camera_names),
            "scenarios": {
                s: {"routes": routes_per_scenario.get(s, 0), "frames": n}
                for s, n in sorted(per_scenario.items())
            },
            "size_bytes": disk_usage(self.root),
            "rig": m["rig"],
            "image_hw": m["image_hw"],
            "settings": m.get("settings", {}),
            "created": m.get("created", {}),
        }


# ------------------------------------------------------------------------------------------ annotation arrays
#: Annotation fields that must hold finite numbers (NaN marks "none" only in boxes, polylines and distances).
FINITE_FIELDS = frozenset(
    {
        "K",
        "T_ego_from_cam",
        "ego_pose_world",
        "ego_center_ego",
        "ego_size_lwh",
        "actor_center_ego",
        "actor_size_lwh",
        "actor_yaw_ego",
        "actor_velocity_ego",
        "future_xy",
        "future_yaw",
    }
)


def annotation_dims(manifest: dict[str, Any]) -> dict[str, int]:
    """Annotation sizes a data set fixes for every frame: ``N`` (cameras) and ``F`` (future waypoints, from
    the recording settings when present)."""
    dims: dict[str, int] = {}
    names = manifest.get("camera_names")
    if isinstance(names, list):
        dims["N"] = len(names)
    steps = (manifest.get("settings") or {}).get("future_waypoints")
    if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
        dims["F"] = steps
    return dims


def _shape_tokens(shape: str) -> tuple[str | int, ...] | None:
    """``"[A, N, 4]"`` -> ``("A", "N", 4)``; None for a shape text this checker does not understand."""
    text = shape.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1].strip()
    if not inner:
        return ()
    out: list[str | int] = []
    for tok in (t.strip() for t in inner.split(",")):
        if tok.isdigit():
            out.append(int(tok))
        elif tok.isidentifier():
            out.append(tok)
        else:
            return None
    return tuple(out)


def _shape_problem(
    shape: tuple[int, ...],
    want: tuple[str | int, ...],
    bound: dict[str, int],
    origin: dict[str, str],
    name: str,
) -> str | None:
    if len(shape) != len(want):
        return f"{len(want)} dimension(s), got {len(shape)}"
    new: dict[str, int] = {}
    for size, w in zip(shape, want, strict=True):
        if isinstance(w, int):
            if size != w:
                return f"size {w}, got {size}"
            continue
        have = bound.get(w, new.get(w))
        if have is None:
            new[w] = size
        elif size != have:
            return f"{w} = {have} from {origin.get(w, name)}"
    for w, size in new.items():
        bound[w], origin[w] = size, name
    return None


def check_annotation_arrays(
    arrays: dict[str, Any], where: str, dims: dict[str, int] | None = None
) -> list[str]:
    """Problems with annotation arrays (one message each, naming ``where`` and the field): the kind of
    values (text / numbers), the shape against :data:`riskdistill.data.format.ANNOTATION_KEYS` (sizes that
    several fields share, e.g. ``A`` actors, must agree, and ``dims`` fixes known ones such as ``N``
    cameras), and NaN / inf in :data:`FINITE_FIELDS`. Fields this version does not know are not judged
    (optional keys of newer writers pass). The one check behind ``data validate``, labelling and training."""
    return [msg for _, msg in _annotation_problems(arrays, where, dims)]


def _annotation_problems(
    arrays: dict[str, Any], where: str, dims: dict[str, int] | None
) -> list[tuple[str, str]]:
    specs = {k.name: k for k in fmt.ANNOTATION_KEYS}
    bound = dict(dims or {})
    origin = {k: "the data set's manifest" for k in bound}
    problems: list[tuple[str, str]] = []
    for name in (k for k in specs if k in arrays):  # format order: actor_id binds A before the others
        spec = specs[name]
        a = np.asarray(arrays[name])
        text = spec.dtype == "U"
        if (a.dtype.kind != "U") if text else (a.dtype.kind not in "biuf"):
            what = "text" if text else "numbers"
            msg = f"{where}: field {name!r} has dtype {a.dtype}, expected {what} ({spec.dtype})"
            problems.append((name, msg))
            continue
        want = _shape_tokens(spec.shape)
        if want is not None:
            why = _shape_problem(a.shape, want, bound, origin, repr(name))
            if why is not None:
                msg = f"{where}: field {name!r} has shape {a.shape}, expected {spec.shape} ({why})"
                problems.append((name, msg))
                continue
        if name in FINITE_FIELDS and a.dtype.kind == "f":
            bad = np.argwhere(~np.isfinite(a))
            if len(bad):
                at = [int(v) for v in bad[0]]
                msg = f"{where}: field {name!r} contains {len(bad)} NaN/inf value(s), first at index {at}"
                problems.append((name, msg))
    return problems


def check_image_file(path: Path, rel: str, hw: Sequence[int] | None = None, formats=("JPEG",)) -> str | None:
    """None when the file decodes completely as one of ``formats`` (and is ``hw`` = (height, width) when
    given); otherwise the problem, naming ``rel``. Decoding catches truncated and garbage files that a
    header check passes."""
    from PIL import Image

    try:
        if not path.is_file():
            return f"{rel}: image file is missing"
        if path.stat().st_size == 0:
            return f"{rel}: image file is empty (0 bytes)"
        with Image.open(path) as im:
            if im.format not in formats:
                return f"{rel}: not a {'/'.join(formats)} image ({im.format})"
            if hw is not None and (im.height, im.width) != tuple(hw):
                return f"{rel}: image is {im.width}x{im.height}, manifest image_hw is {hw[1]}x{hw[0]}"
            im.load()  # decodes every pixel: a truncated or corrupt file raises here
    except Exception as exc:
        return f"{rel}: corrupt or unreadable image ({type(exc).__name__}: {exc})"
    return None


def disk_usage(root: Path) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------ validation
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def check_calibration(
    K: np.ndarray, T_ego_from_cam: np.ndarray, image_hw: tuple[int, int], names: list[str], where: str
) -> list[str]:
    """Sanity of a rig's calibration: K finite with fx, fy > 0 and the principal point inside the image,
    T_ego_from_cam a rigid transform (orthonormal rotation, det 1) with the camera 0.3-5 m above ground."""
    problems = []
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T_ego_from_cam, dtype=np.float64)
    n = len(names)
    if K.shape != (n, 3, 3):
        return [f"{where}: K has shape {K.shape}, expected ({n}, 3, 3)"]
    if T.shape != (n, 4, 4):
        return [f"{where}: T_ego_from_cam has shape {T.shape}, expected ({n}, 4, 4)"]
    h, w = image_hw
    for i, name in enumerate(names):
        k, t = K[i], T[i]
        if not np.all(np.isfinite(k)):
            problems.append(f"{where}: K[{name}] is not finite")
            continue
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            problems.append(
                f"{where}: K[{name}] focal lengths fx={k[0, 0]:.3f}, fy={k[1, 1]:.3f} must be > 0"
            )
        if not (0.0 <= k[0, 2] <= w and 0.0 <= k[1, 2] <= h):
            problems.append(
                f"{where}: K[{name}] principal point ({k[0, 2]:.1f}, {k[1, 2]:.1f}) "
                f"is outside the {w}x{h} image"
            )
        if not np.all(np.isfinite(t)):
            problems.append(f"{where}: T_ego_from_cam[{name}] is not finite")
            continue
        R = t[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or abs(np.linalg.det(R) - 1.0) > 1e-5:
            problems.append(
                f"{where}: T_ego_from_cam[{name}] rotation is not orthonormal with det 1 "
                f"(det {np.linalg.det(R):.6f})"
            )
        if not np.allclose(t[3], [0.0, 0.0, 0.0, 1.0]):
            problems.append(
                f"{where}: T_ego_from_cam[{name}] last row is {t[3].tolist()}, expected [0, 0, 0, 1]"
            )
        if not 0.3 <= t[2, 3] <= 5.0:
            problems.append(
                f"{where}: T_ego_from_cam[{name}] camera height {t[2, 3]:.3f} m is outside 0.3-5 m"
            )
    return problems


def _check_annotation(path: Path, rel: str, manifest: dict[str, Any], cam_names: list[str]) -> list[str]:
    problems = []
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # a truncated or foreign file
        return [f"{rel}: unreadable annotation file ({type(exc).__name__}: {exc})"]
    keys = set(arrays)
    required = [k.name for k in fmt.ANNOTATION_KEYS if not getattr(k, "optional", False)]
    missing = [k for k in required if k not in keys]
    if missing:
        problems.append(f"{rel}: missing annotation key(s) {missing}")
    shared = _annotation_problems(arrays, rel, annotation_dims(manifest))
    problems += [msg for _, msg in shared]
    judged = {name for name, _ in shared}
    for spec in (*fmt.ANNOTATION_KEYS, *fmt.OPTIONAL_ANNOTATION_KEYS):
        if spec.name not in keys or spec.name in judged:
            continue
        dt = arrays[spec.name].dtype
        if (dt.kind != "U") if spec.dtype == "U" else (dt != np.dtype(spec.dtype)):
            problems.append(f"{rel}: {spec.name} has dtype {dt}, expected {spec.dtype}")
    if "actor_id" in keys:  # per-actor optional keys: one entry per actor
        n_act = len(arrays["actor_id"])
        for spec in fmt.OPTIONAL_ANNOTATION_KEYS:
            if spec.shape.startswith("[A") and spec.name in keys and len(arrays[spec.name]) != n_act:
                problems.append(f"{rel}: {spec.name} has {len(arrays[spec.name])} entries for {n_act} actors")
    calib = {"K", "T_ego_from_cam", "camera_names"}
    if calib <= keys and not judged & calib:
        names = [str(s) for s in arrays["camera_names"]]
        if names != cam_names:
            problems.append(f"{rel}: camera_names {names} != manifest camera_names {cam_names}")
        hw = tuple(int(v) for v in manifest["image_hw"])
        problems += check_calibration(arrays["K"], arrays["T_ego_from_cam"], hw, cam_names, rel)
    return problems


def validate_dataset(root: str | Path, *, check_hashes: bool = True, deep: bool = True) -> list[str]:
    """Every problem found in a recorded data set, one clear message each (naming the file and field);
    ``[]`` means sound. ``check_hashes``: hash every listed file; ``deep``: decode every image and check
    every annotation file (:func:`check_annotation_arrays`). Paths that point outside the data set are
    reported and never read."""
    root = Path(root)
    try:
        manifest = _load_manifest(root)
    except DatasetError as exc:
        return [str(exc)]
    problems: list[str] = []
    for key in ("camera_names", "image_hw", "rig", "counts", "files", "settings"):
        if key not in manifest:
            problems.append(f"{root / fmt.MANIFEST}: missing field {key!r}")
    if problems:
        return problems
    cam_names = list(manifest["camera_names"])
    hw = tuple(int(v) for v in manifest["image_hw"])

    # the rig as stored in the manifest
    try:
        from riskdistill.contracts.rig import Rig

        rig = Rig.from_dict(manifest["rig"], source=f"{root / fmt.MANIFEST}: rig")
        if rig.camera_names != cam_names:
            problems.append(f"{fmt.MANIFEST}: rig cameras {rig.camera_names} != camera_names {cam_names}")
        if rig.image_size() != hw:
            problems.append(f"{fmt.MANIFEST}: rig image size {rig.image_size()} != image_hw {list(hw)}")
        problems += check_calibration(
            rig.K(), rig.T_ego_from_cam(), hw, rig.camera_names, f"{fmt.MANIFEST}: rig"
        )
    except Exception as exc:
        problems.append(f"{fmt.MANIFEST}: rig is invalid ({exc})")

    # listed files: inside the data set, present, right content
    files: dict[str, str] = manifest["files"]
    for rel, digest in files.items():
        try:
            path = resolve_inside(root, rel, "files", str(fmt.MANIFEST))
        except DataError as exc:
            problems.append(str(exc))
            continue
        if not path.is_file():
            problems.append(f"{rel}: listed in the manifest but missing")
        elif check_hashes and _sha256(path) != digest:
            problems.append(f"{rel}: sha256 mismatch (the file changed or is corrupt since it was recorded)")

    # the frame table
    frames_path = root / fmt.FRAMES
    if not frames_path.is_file():
        return [*problems, f"{fmt.FRAMES}: missing"]
    try:
        table = pq.read_table(frames_path)
    except Exception as exc:
        return [*problems, f"{fmt.FRAMES}: unreadable ({type(exc).__name__}: {exc})"]
    missing_cols = [c for c in fmt.FRAME_SCHEMA.names if c not in table.column_names]
    if missing_cols:
        return [*problems, f"{fmt.FRAMES}: missing column(s) {missing_cols}"]
    for name in fmt.FRAME_SCHEMA.names:
        want, have = fmt.FRAME_SCHEMA.field(name).type, table.schema.field(name).type
        if want != have:
            problems.append(f"{fmt.FRAMES}: column {name!r} has type {have}, expected {want}")
    counts = manifest["counts"]
    if table.num_rows != counts.get("frames"):
        problems.append(
            f"{fmt.FRAMES}: {table.num_rows} rows but manifest counts.frames = {counts.get('frames')}"
        )
    n_routes = len(set(table.column("route_id").to_pylist()))
    if n_routes != counts.get("routes"):
        problems.append(
            f"{fmt.FRAMES}: frames of {n_routes} routes but manifest counts.routes = {counts.get('routes')}"
        )
    fids = table.column("frame_id").to_pylist()
    problems += check_frame_ids(fids, fmt.FRAMES)
    if len(set(fids)) != len(fids):
        problems.append(f"{fmt.FRAMES}: frame_id values are not unique")
    for col in (*fmt.POSE_COLUMNS, "timestamp_s", "ego_speed_mps"):
        arr = table.column(col).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(arr))
        if len(bad):
            problems.append(
                f"{fmt.FRAMES}: column {col!r} has {len(bad)} NaN/inf value(s), "
                f"first at frame {fids[bad[0]]!r}"
            )
    for route in manifest.get("routes", []):
        done = f"{fmt.ROUTES_DIR}/{route['route_id']}/{fmt.DONE}"
        if not (root / done).is_file():
            problems.append(f"{done}: missing; route {route['route_id']!r} is listed but not finished")

    # every frame's files
    images = table.column("image_paths").to_pylist()
    anns = table.column("annotation_path").to_pylist()
    for fid, imgs, ann in zip(fids, images, anns, strict=True):
        if len(imgs) != len(cam_names):
            problems.append(
                f"{fmt.FRAMES}: frame {fid!r} lists {len(imgs)} images for {len(cam_names)} cameras"
            )
        for k, rel in enumerate(imgs):
            try:
                path = resolve_inside(root, rel, f"image_paths[{k}]", f"{fmt.FRAMES}: frame {fid!r}")
            except DataError as exc:
                problems.append(str(exc))
                continue
            if not path.is_file():
                if rel in files:
                    continue  # already reported above
                problems.append(f"{rel}: image of frame {fid!r} is missing")
            elif rel not in files:
                problems.append(f"{rel}: image of frame {fid!r} is not listed in the manifest")
            elif deep:
                problems += _check_image(path, rel, hw)
        try:
            path = resolve_inside(root, ann, "annotation_path", f"{fmt.FRAMES}: frame {fid!r}")
        except DataError as exc:
            problems.append(str(exc))
            continue
        if not path.is_file():
            if ann not in files:
                problems.append(f"{ann}: annotation of frame {fid!r} is missing")
        elif ann not in files:
            problems.append(f"{ann}: annotation of frame {fid!r} is not listed in the manifest")
        elif deep:
            problems += _check_annotation(path, ann, manifest, cam_names)
    return problems


def _check_image(path: Path, rel: str, hw: tuple[int, ...]) -> list[str]:
    problem = check_image_file(path, rel, hw)
    return [problem] if problem else []


def annotation_fields(frame: FrameRecord, keys: Sequence[str], user: str = "") -> dict[str, np.ndarray]:
    """``{key: frame.annotation[key]}`` for ``keys``, checked by :func:`check_annotation_arrays` (kinds,
    shapes, sizes shared between the fields asked for, NaN); otherwise a :class:`DataError` naming the
    annotation file, the field and who needed it (``user``)."""
    path = frame.root / frame.annotation_path
    who = f" (needed by {user})" if user else ""
    try:
        ann = frame.annotation
        missing = [k for k in keys if k not in ann]
        out = {k: ann[k] for k in keys if k in ann}
    except DataError as exc:
        raise DataError(f"{exc}{who}") from exc
    except Exception as exc:
        raise DataError(
            f"{path}: unreadable annotation file of frame {frame.frame_id!r}{who} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if missing:
        also = f" (and {missing[1:]})" if len(missing) > 1 else ""
        raise DataError(
            f"{path}: missing annotation field {missing[0]!r}{also}{who} in frame {frame.frame_id!r}"
        )
    problems = check_annotation_arrays(out, str(path), frame.dims)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise DataError(f"{problems[0]}{who}; frame {frame.frame_id!r}{more}")
    return out


def ann_field(frame: FrameRecord, key: str, user: str = "") -> np.ndarray:
    """``frame.annotation[key]``, or a :class:`DataError` naming the file and the field."""
    return annotation_fields(frame, (key,), user)[key]
