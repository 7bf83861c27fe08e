"""Inference engines for the student's driving path (what ``StudentDriver`` runs every planning step).

- ``eager``: PyTorch under ``inference_mode``, the reference. Returns every output of
  ``Student.forward`` (``waypoints``, ``occupancy`` if that head is on, ``risk`` when asked for).
- ``onnx``: onnxruntime on the ONNX export of the driving path (:func:`riskdistill.models.export_onnx`,
  which matches PyTorch to about 1e-6). Returns what driving needs only (``export.driving_outputs``:
  waypoints, path and speed logits of a path+speed planner, risk when asked for, the BEV occupancy with
  ``with_occupancy``, for a driver's occupancy brake): the heads driving does
  not need are not in the graph, and the graph is fused and planned once for the batch size it
  was exported with. Faster than eager at batch 1 on one CPU thread (``benchmarks/bench_inference.py``).
  Temporal students are refused (the export has no history input).

    engine = build_engine("onnx", student, with_risk=True)
    out = engine(observation)            # numpy arrays with the batch dimension: out["waypoints"] [B, 6, 2]

The ONNX graph is exported on the first call, from that call's observation (shapes and dtypes), into the
folder ``onnx_path`` (default: :func:`engine_cache_dir`, ``$RISKDISTILL_CACHE/onnx`` or
``~/.cache/riskdistill/onnx``), or loaded from there when a file exported from the same weights exists: its
name holds a hash of the weights, the student config, the export settings, the torch version and the source
of the code the graph is traced from (:func:`graph_code_digest`: a changed forward pass is exported again,
never served from a stale file), and the observation's shape. Files are written atomically, so processes may
share the folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from riskdistill.contracts.batch import Observation
from riskdistill.models.export import INPUT_NAMES, export_onnx
from riskdistill.models.student import Student

ENGINES: tuple[str, ...] = ("eager", "onnx")


def engine_cache_dir() -> Path:
    """Where exported graphs are kept: ``$RISKDISTILL_CACHE/onnx``, else ``~/.cache/riskdistill/onnx``."""
    root = os.environ.get("RISKDISTILL_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "riskdistill") / "onnx"


class EagerEngine:
    """PyTorch eager under ``inference_mode`` (the reference path)."""

    name = "eager"

    def __init__(self, student: Student, with_risk: bool):
        self.student = student.eval()
        self.with_risk = bool(with_risk)

    def __call__(self, obs: Observation) -> dict[str, np.ndarray]:
        device = next(self.student.parameters()).device
        with torch.inference_mode():
            out = self.student(obs.to(device), with_risk=self.with_risk)
        return {k: v.float().cpu().numpy() for k, v in out.items() if k != "bev"}


#: The sources an exported graph is traced from, relative to the ``riskdistill`` package: the model, and
#: the geometry and contracts its forward pass calls.
GRAPH_SOURCES: tuple[str, ...] = ("models", "contracts", "geometry.py")


def source_digest(root: Path, entries: tuple[str, ...]) -> str:
    """A short hash of the ``.py`` files under ``root`` named by ``entries`` (folders, searched recursively,
    or files): their paths relative to ``root`` and their contents."""
    h = hashlib.sha256()
    for entry in entries:
        path = root / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def graph_code_digest() -> str:
    """:func:`source_digest` of the installed package's :data:`GRAPH_SOURCES`: part of an exported graph's
    name, so that a change to the code of the forward pass is exported anew."""
    return source_digest(Path(__file__).resolve().parents[1], GRAPH_SOURCES)


def weights_digest(student: Student, with_risk: bool, with_occupancy: bool = False) -> str:
    """A short hash of the student's weights, its config, the export settings and the code the graph is
    traced from (:func:`graph_code_digest`); it names exported files."""
    h = hashlib.sha256()
    h.update(json.dumps(student.cfg.to_dict(), sort_keys=True).encode())
    h.update(f"with_risk={bool(with_risk)};torch={torch.__version__}".encode())
    h.update(f"code={graph_code_digest()}".encode())
    if with_occupancy:  # (files exported without it keep their names)
        h.update(b"with_occupancy")
    for k, v in sorted(student.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class OnnxEngine:
    """onnxruntime on the exported driving path (see the module docstring). ``threads``: onnxruntime's
    intra-op threads (default: ``torch.get_num_threads()``, 1 in evaluation workers)."""

    name = "onnx"

    def __init__(
        self,
        student: Student,
        with_risk: bool,
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        with_occupancy: bool = False,
    ):
        if student.cfg.temporal.enabled:
            raise ValueError(
                "engine 'onnx' cannot run a temporal student (the export has no history input); "
                "use engine 'eager'"
            )
        self.student = student.eval()
        self.with_risk = bool(with_risk)
        self.with_occupancy = bool(with_occupancy)
        self.threads = int(threads) if threads is not None else torch.get_num_threads()
        self.digest = weights_digest(student, self.with_risk, self.with_occupancy)
        self._dir = Path(onnx_path) if onnx_path is not None else None
        self.path: Path | None = None
        self._session: Any = None
        self._signature: tuple | None = None

    def _file_for(self, obs: Observation) -> Path:
        if self._dir is None:
            self._dir = engine_cache_dir()
        shape = "x".join(str(d) for d in obs.images.shape)
        dtype = str(obs.images.dtype).removeprefix("torch.")
        return self._dir / f"student-{self.digest}-{dtype}-{shape}.onnx"

    def prepare(self, obs: Observation) -> Path:
        """Export (or reuse) the graph for observations shaped like ``obs``; returns its file."""
        import onnxruntime as ort

        path = self._file_for(obs)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(self.student, path, self.with_risk, obs, with_occupancy=self.with_occupancy)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._signature = self._sig(obs)
        self.path = path
        return path

    @staticmethod
    def _sig(obs: Observation) -> tuple:
        return tuple((tuple(getattr(obs, n).shape), getattr(obs, n).dtype) for n in INPUT_NAMES)

    def __call__(self, obs: Observation) -> dict[str, np.ndarray]:
        if self._session is None or self._sig(obs) != self._signature:
            self.prepare(obs)
        feeds = {n: getattr(obs, n).cpu().numpy() for n in self._inputs}
        return dict(zip(self._outputs, self._session.run(None, feeds), strict=True))


Engine = Callable[[Observation], dict[str, np.ndarray]]


def build_engine(
    name: str, student: Student, with_risk: bool, *, with_occupancy: bool = False, **options: Any
) -> Engine:
    """The engine ``name`` (:data:`ENGINES`) for ``student``; ValueError naming the valid engines.
    ``with_occupancy``: the engine also returns the BEV occupancy (eager always does)."""
    if name == "eager":
        if options:
            raise ValueError(f"engine 'eager' takes no options, got {sorted(options)}")
        return EagerEngine(student, with_risk)
    if name == "onnx":
        return OnnxEngine(student, with_risk, with_occupancy=with_occupancy, **options)
    raise ValueError(f"unknown inference engine {name!r}; valid engines: {list(ENGINES)}")
