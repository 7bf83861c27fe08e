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


#: Weights shipped with the package (``riskdistill/weights/<name>.safetensors``), by name: ``builtin:<name>``.
BUILTIN_PREFIX = "builtin:"


def resolve_init_weights(spec: str) -> Path:
    """A weights file for ``init_weights``: ``builtin:<name>`` (shipped in ``riskdistill/weights/``) or a
    path to a ``.safetensors`` file. FileNotFoundError names what was looked for."""
    from importlib import resources

    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        folder = Path(str(resources.files("riskdistill") / "weights"))
        path = folder / f"{name}.safetensors"
        if not path.is_file():
            have = sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []
            raise FileNotFoundError(f"no shipped weights {name!r} ({path}); shipped: {have}")
        return path
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"init weights file not found: {path}")
    return path


#: The tensors whose meaning depends on ``heads.planning.waypoint_prior``: the waypoint output layer is a
#: whole plan without the prior and a correction to the kinematic arc with it (models/heads/planning.py).
WAYPOINT_OUT_PREFIX = "heads.planning.out."


def split_prefixes(prefixes: tuple[str, ...] | list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``init_weights_prefixes`` -> (prefixes to copy, prefixes to leave out: the entries ``!prefix``)."""
    take = tuple(p for p in prefixes if not p.startswith("!"))
    skip = tuple(p[1:] for p in prefixes if p.startswith("!"))
    return take, skip


def init_weights_waypoint_prior(path: Path, meta: dict[str, str]) -> str | None:
    """The ``waypoint_prior`` the planner in the weights file ``path`` (safetensors metadata ``meta``) was
    trained with, where something says it: the metadata (:func:`save_init_weights`), the provenance card
    beside a shipped file, or the ``config.json`` of the checkpoint folder it sits in; None when nothing
    says."""
    if "waypoint_prior" in meta:
        return meta["waypoint_prior"]
    card = path.with_suffix(".json")
    if card.is_file():
        doc = load_json_object(card, what="the weights' provenance card (an object)")
        if "waypoint_prior" in doc:
            return str(doc["waypoint_prior"])
    if path.name == WEIGHTS_FILE and (path.parent / CONFIG_FILE).is_file():
        return load_student_config(path.parent).heads.planning.waypoint_prior
    return None


def load_init_weights(student: Student, spec: str, prefixes: tuple[str, ...] = ("backbone.",)) -> list[str]:
    """Copy the tensors of ``spec`` whose names start with one of ``prefixes`` into ``student`` (same name,
    same shape; e.g. a sim-pretrained image backbone every variant starts from); a prefix written ``!prefix``
    leaves those tensors out (``("heads.planning.", "!heads.planning.out.")``). Returns the names copied;
    ValueError when a tensor's shape differs, nothing matches, or the waypoint output layer was trained with
    another ``waypoint_prior`` than the student's (a whole plan would be read as a correction to the arc, or
    the reverse)."""
    from safetensors import safe_open

    path = resolve_init_weights(spec)
    own = student.state_dict()
    include, exclude = split_prefixes(prefixes)
    with safe_open(str(path), "pt") as f:  # only the tensors asked for are read
        meta = f.metadata() or {}
        names = f.keys()  # a safetensors file handle is not iterable
        take = {k: f.get_tensor(k) for k in names if k.startswith(include) and not k.startswith(exclude)}
    bad = [
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in take.items()
        if k in own and v.shape != own[k].shape
    ]
    missing = [k for k in take if k not in own]
    if bad or missing or not take:
        raise ValueError(
            f"{path}: cannot initialise this student from it (prefixes {list(prefixes)}): "
            f"shape mismatches {bad[:3]}, unknown tensors {missing[:3]}, {len(take)} matching tensors"
        )
    if any(k.startswith(WAYPOINT_OUT_PREFIX) for k in take):
        theirs, ours = init_weights_waypoint_prior(path, meta), student.cfg.heads.planning.waypoint_prior
        if theirs is not None and theirs != ours:
            raise ValueError(
                f"{path}: its waypoint output layer was trained with waypoint_prior {theirs!r}, this student "
                f"has {ours!r} (model.heads.planning.waypoint_prior); set that to {theirs!r}, or leave the "
                f'layer out so it starts fresh: add "!{WAYPOINT_OUT_PREFIX}" to init_weights_prefixes'
            )
    with torch.no_grad():
        for k, v in take.items():
            own[k].copy_(v.to(own[k].dtype))
    return sorted(take)


def save_init_weights(student: Student, path: str | Path, prefixes: tuple[str, ...] = ("backbone.",)) -> Path:
    """Write the tensors of ``student`` under ``prefixes`` (float16) as an init-weights file."""
    state = {
        k: v.detach().to("cpu").half().contiguous()
        if v.is_floating_point()
        else v.detach().cpu().contiguous()
        for k, v in student.state_dict().items()
        if k.startswith(prefixes)
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        meta = {
            "format": "pt",
            "preset": student.cfg.preset,
            "waypoint_prior": student.cfg.heads.planning.waypoint_prior,
        }
        save_file(state, str(tmp), metadata=meta)
    return path
