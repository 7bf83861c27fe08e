"""Training checkpoints: safetensors + JSON, never pickle; every write atomic.

Layout of a run's checkpoints::

    <run_dir>/checkpoints/latest.json          {"checkpoint": "step_00000120", "step": 120}  (atomic)
    <run_dir>/checkpoints/step_00000120/       one checkpoint (a folder renamed into place when complete)
        model.safetensors                      the student's weights (riskdistill.models.save_student)
        config.json                            the full resolved TrainConfig; key "model" = StudentConfig,
                                               so riskdistill.models.load_student(folder) works
        optimizer.safetensors, optimizer.json  optimizer state: tensors / everything else
        scheduler.json                         LR scheduler (and AMP grad scaler) state
        rng.safetensors, rng.json              RNG states of every rank: torch, CUDA, numpy, python
        trainer.json                           step, epoch, batch in epoch (data-order position), world size,
                                               the data set's signature (image size, cameras, rig, frames)
    <run_dir>/checkpoints/final/               the last state of a finished run (same layout)

A state dict is stored by :func:`split_state`: tensors go to a safetensors file under generated keys, the
rest (numbers, strings, lists, dicts with int keys, tuples, NaN) to a JSON tree that points at them.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from riskdistill.io import atomic_path, atomic_write_json, load_json_object

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
FINAL = "final"


class CheckpointError(RuntimeError):
    """A checkpoint is missing or unreadable; the message names the file."""


# ------------------------------------------------------------------------------------------ state <-> files
def split_state(obj: Any, prefix: str = "t") -> tuple[Any, dict[str, torch.Tensor]]:
    """``(json_tree, tensors)``: ``obj`` with each tensor replaced by ``{"__tensor__": key}``.

    Dicts with non-string keys become ``{"__items__": [[key, value], ...]}``, tuples
    ``{"__tuple__": [...]}``, non-finite floats ``{"__float__": "nan"}``; :func:`join_state` inverts it."""
    tensors: dict[str, torch.Tensor] = {}

    def enc(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            key = f"{prefix}{len(tensors)}"
            tensors[key] = x.detach().to("cpu").clone().contiguous()
            return {"__tensor__": key}
        if isinstance(x, np.ndarray):
            key = f"{prefix}{len(tensors)}"
            tensors[key] = torch.from_numpy(np.ascontiguousarray(x).copy())
            return {"__ndarray__": key}
        if isinstance(x, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in x):
                return {k: enc(v) for k, v in x.items()}
            return {"__items__": [[enc(k), enc(v)] for k, v in x.items()]}
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, float) and not math.isfinite(x):
            return {"__float__": repr(x)}
        if isinstance(x, np.generic):
            return x.item()
        if x is None or isinstance(x, str | int | float | bool):
            return x
        raise TypeError(f"cannot store a {type(x).__name__} in a checkpoint (only tensors and JSON values)")

    return enc(obj), tensors


def join_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`split_state`."""

    def dec(x: Any) -> Any:
        if isinstance(x, dict):
            if set(x) == {"__tensor__"}:
                return tensors[x["__tensor__"]]
            if set(x) == {"__ndarray__"}:
                return tensors[x["__ndarray__"]].numpy()
            if set(x) == {"__items__"}:
                return {dec(k): dec(v) for k, v in x["__items__"]}
            if set(x) == {"__tuple__"}:
                return tuple(dec(v) for v in x["__tuple__"])
            if set(x) == {"__float__"}:
                return float(x["__float__"])
            return {k: dec(v) for k, v in x.items()}
        if isinstance(x, list):
            return [dec(v) for v in x]
        return x

    return dec(tree)


def save_state(folder: Path, name: str, state: Any) -> None:
    """``folder/<name>.json`` (+ ``folder/<name>.safetensors`` when ``state`` holds tensors), atomically."""
    tree, tensors = split_state(state)
    if tensors:
        with atomic_path(folder / f"{name}.safetensors") as tmp:
            save_file(tensors, str(tmp))
    atomic_write_json(folder / f"{name}.json", tree)


def load_state(folder: Path, name: str) -> Any:
    path = folder / f"{name}.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    tree = load_json_object(path, CheckpointError)
    st = folder / f"{name}.safetensors"
    try:
        tensors = load_file(str(st)) if st.is_file() else {}
    except Exception as exc:
        raise CheckpointError(f"{st}: unreadable ({type(exc).__name__}: {exc})") from exc
    try:
        return join_state(tree, tensors)
    except KeyError as exc:
        raise CheckpointError(f"{st}: missing tensor {exc} referenced by {path}") from exc


# ------------------------------------------------------------------------------------------ RNG
def capture_rng() -> dict[str, Any]:
    """The RNG states of this process: torch (CPU), CUDA (every device, when present), numpy, python."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": np_state[0],
            "keys": np_state[1],
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8))
    n = state["numpy"]
    np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))  # fmt: skip
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = [t.to(torch.uint8) for t in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# ------------------------------------------------------------------------------------------ checkpoints
@dataclass
class TrainerState:
    """Where training stands: optimizer steps done, the epoch, and how many batches of that epoch were
    consumed (the data-order position resume continues from)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples_seen: int = 0
    world_size: int = 1
    data: dict[str, Any] | None = None  # what the data set was (training.data.data_signature)


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(
    run_dir: Path,
    name: str,
    *,
    save_model,
    config: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any | None,
    rng_per_rank: list[dict[str, Any]],
    trainer: TrainerState,
    keep_last: int | None = None,
) -> Path:
    """Write ``<run_dir>/checkpoints/<name>/`` completely in a temporary folder, rename it into place, then
    point ``latest.json`` at it and drop all but the newest ``keep_last`` step checkpoints.

    ``save_model(folder)`` writes ``model.safetensors`` (and a ``config.json`` this function then replaces
    with ``config``, the full resolved training config)."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        save_model(tmp)
        if not (tmp / "model.safetensors").is_file():
            raise CheckpointError(f"save_model did not write {tmp / 'model.safetensors'}")
        atomic_write_json(tmp / "config.json", config)
        save_state(tmp, "optimizer", optimizer.state_dict())
        sched = {"scheduler": scheduler.state_dict() if scheduler is not None else None,
                 "grad_scaler": scaler.state_dict() if scaler is not None else None}  # fmt: skip
        save_state(tmp, "scheduler", sched)
        save_state(tmp, "rng", {"ranks": rng_per_rank})
        atomic_write_json(tmp / "trainer.json", vars(trainer))
        _fsync_dir(tmp)
        final = root / name
        old = None
        if final.exists():
            old = root / f".{name}.{uuid.uuid4().hex[:8]}.old"
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_json(root / LATEST, {"checkpoint": name, "step": trainer.step})
    if keep_last is not None:
        prune_checkpoints(run_dir, keep_last)
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The step checkpoints of a run, oldest first (``final`` not included)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))


def prune_checkpoints(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step checkpoints (never the one ``latest.json`` names)."""
    latest = latest_checkpoint(run_dir)
    ckpts = list_checkpoints(run_dir)
    drop = ckpts[: max(len(ckpts) - max(keep_last, 0), 0)]
    removed = []
    for p in drop:
        if latest is not None and p.resolve() == latest.resolve():
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint folder ``latest.json`` points at, or None when the run has none."""
    root = Path(run_dir) / CHECKPOINTS
    ptr = root / LATEST
    if not ptr.is_file():
        return None
    data = load_json_object(ptr, CheckpointError)
    name = data.get("checkpoint")
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        raise CheckpointError(f"{ptr}: 'checkpoint' must name a folder in {root}, got {name!r}")
    path = root / name
    if not (path / "trainer.json").is_file():
        raise CheckpointError(f"{ptr} points at {path}, which is not a complete checkpoint")
    return path


@dataclass
class LoadedCheckpoint:
    path: Path
    config: dict[str, Any]
    optimizer: Any
    scheduler: Any
    grad_scaler: Any
    rng_per_rank: list[dict[str, Any]]
    trainer: TrainerState


def load_checkpoint(path: Path) -> LoadedCheckpoint:
    """Everything but the weights (load those with ``riskdistill.models.load_student`` or
    :func:`load_model_weights`)."""
    path = Path(path)
    for f in ("model.safetensors", "config.json", "trainer.json"):
        if not (path / f).is_file():
            raise CheckpointError(f"{path / f}: missing (not a complete checkpoint)")
    sched = load_state(path, "scheduler")
    trainer = load_json_object(path / "trainer.json", CheckpointError)
    try:
        state = TrainerState(**trainer)
    except TypeError as exc:
        raise CheckpointError(f"{path / 'trainer.json'}: {exc}") from exc
    return LoadedCheckpoint(
        path=path,
        config=load_json_object(path / "config.json", CheckpointError),
        optimizer=load_state(path, "optimizer"),
        scheduler=sched["scheduler"],
        grad_scaler=sched["grad_scaler"],
        rng_per_rank=load_state(path, "rng")["ranks"],
        trainer=state,
    )


def load_model_weights(model: torch.nn.Module, path: Path) -> None:
    """Load ``path/model.safetensors`` into ``model`` (strict)."""
    f = Path(path) / "model.safetensors"
    try:
        sd = load_file(str(f))
    except Exception as exc:
        raise CheckpointError(f"{f}: unreadable ({type(exc).__name__}: {exc})") from exc
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{f}: weights do not fit the model (missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]})")  # fmt: skip
