"""Student checkpoints: a folder with ``model.safetensors`` and ``config.json`` (key ``"model"`` = the
``StudentConfig`` dict; the training engine adds its own keys beside it)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from riskdistill.config import ConfigError
from riskdistill.io import atomic_path, atomic_write_json, load_json_object
from riskdistill.models.config import StudentConfig
from riskdistill.models.student import Student, build_student

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_student(student: Student, directory: str | Path, extra_config: dict | None = None) -> Path:
    """Write ``directory/model.safetensors`` and ``directory/config.json`` (``{"model": cfg, **extra}``),
    each atomically. Returns the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in student.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "preset": student.cfg.preset})
    cfg_path = directory / CONFIG_FILE
    doc = {}
    if cfg_path.is_file():  # keep keys another writer (the training engine) put there
        try:
            doc = json.loads(cfg_path.read_text())
        except json.JSONDecodeError:
            doc = {}
    doc.update(extra_config or {})
    doc["model"] = student.cfg.to_dict()
    atomic_write_json(cfg_path, doc)
    return directory


def load_student_config(directory: str | Path) -> StudentConfig:
    """The ``StudentConfig`` stored in ``directory/config.json`` under ``"model"``."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path}: missing (a student checkpoint folder holds {WEIGHTS_FILE} and {CONFIG_FILE})"
        )
    doc = load_json_object(path, ConfigError)
    if "model" not in doc or not isinstance(doc["model"], dict):
        raise ConfigError(f"{path}: no 'model' object (the StudentConfig); keys: {sorted(doc)}")
    return StudentConfig.from_dict(doc["model"], source=f"{path} ['model']")


def load_student(directory: str | Path, map_location: str | torch.device = "cpu") -> Student:
    """Rebuild the student from ``config.json`` and load ``model.safetensors`` strictly: missing or
    unexpected tensors, or tensors of the wrong shape, raise an error naming the file."""
    directory = Path(directory)
    cfg = load_student_config(directory)
    student = build_student(cfg)
    wpath = directory / WEIGHTS_FILE
    if not wpath.is_file():
        raise FileNotFoundError(f"{wpath}: missing student weights")
    state = load_file(str(wpath), device=str(map_location))
    own = student.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{wpath}: weights do not match the config in {directory / CONFIG_FILE}: "
            f"missing {missing[:10]}{' ...' if len(missing) > 10 else ''} "
            f"({len(missing)}), unexpected {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''} "
            f"({len(unexpected)})"
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        raise ValueError(
            f"{wpath}: tensor shapes differ from the config: "
            + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in bad[:5])
        )
    student.load_state_dict(state, strict=True)
    return student.to(map_location).eval()
