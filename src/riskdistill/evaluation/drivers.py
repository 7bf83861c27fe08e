"""Which driver drives: a driver spec (``expert``, a student checkpoint, ``package.module:factory``) turned
into a picklable factory that worker processes rebuild from the string.

Drivers get what a car gets: a factory takes no arguments and the driver sees only the observations that
answer its ``SensorRequest``. The privileged expert is the exception that proves the rule: its factory is
marked ``privileged`` and is given the environment (:func:`riskdistill.sim.rollout.build_driver`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riskdistill.contracts.agent import Driver
from riskdistill.io import load_json

#: ``() -> Driver``, or the expert's privileged factory (``ExpertDriver``, given the environment).
DriverFactory = Callable[..., Driver]

# OMP_WAIT_POLICY=PASSIVE (set in riskdistill/__init__.py) must reach the OpenMP runtimes before torch starts;
# student drivers therefore always run in spawned workers, which inherit it.

DEFAULT_STUDENT_RIG = "bench2drive"
_IMPORT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

_STUDENT_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class StudentDriverFactory:
    """Builds a ``riskdistill.models.StudentDriver`` for a checkpoint folder. Picklable (it holds strings
    only); the student is loaded once per process and shared by the routes that process runs.

    The rig is ``rig`` if given, else the checkpoint's ``config.json`` key ``"rig"`` (top level or under
    ``"data"``), else the built-in rig named in the manifest of the training data (``data.root``), else
    :data:`DEFAULT_STUDENT_RIG`; the image size is the student config's ``image_hw``.
    """

    checkpoint: str
    rig: str | None = None

    def load(self) -> Any:
        if self.checkpoint not in _STUDENT_CACHE:
            import torch

            from riskdistill.models import load_student

            torch.set_num_threads(1)  # routes run in parallel processes
            _STUDENT_CACHE[self.checkpoint] = load_student(self.checkpoint, map_location="cpu").eval()
        return _STUDENT_CACHE[self.checkpoint]

    def check(self) -> None:
        """Load the checkpoint once (not cached) so that a broken one fails the evaluation up front instead
        of crashing every route; ValueError naming the folder."""
        from riskdistill.models import load_student

        try:
            load_student(self.checkpoint, map_location="cpu")
        except Exception as exc:
            raise ValueError(f"driver checkpoint {self.checkpoint} cannot be loaded: {exc}") from exc

    def checkpoint_rig(self) -> str:
        if self.rig:
            return self.rig
        cfg_path = Path(self.checkpoint) / "config.json"
        cfg = load_json(cfg_path) if cfg_path.is_file() else {}
        data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
        rig = cfg.get("rig") or data.get("rig")
        if not rig and data.get("root"):  # the training data's manifest names its rig
            from riskdistill.contracts.rig import BUILTIN_RIGS

            manifest = Path(data["root"]) / "manifest.json"
            name = (load_json(manifest).get("rig") or {}).get("name") if manifest.is_file() else None
            rig = name if name in BUILTIN_RIGS else None
        return str(rig or DEFAULT_STUDENT_RIG)

    def __call__(self) -> Driver:
        from riskdistill.models import StudentDriver

        student = self.load()
        return StudentDriver(student, self.checkpoint_rig(), tuple(student.cfg.image_hw))


def is_checkpoint_dir(spec: str) -> bool:
    p = Path(spec)
    return p.is_dir() and (p / "model.safetensors").is_file() and (p / "config.json").is_file()


def make_driver_factory(spec: str, rig: str | None = None) -> DriverFactory:
    """Turn a driver spec into a factory: ``"expert"`` (the privileged expert, the one factory that is given
    the environment, see :func:`riskdistill.sim.rollout.build_driver`), a student checkpoint folder
    (:class:`StudentDriverFactory`) or ``"package.module:name"``, an importable callable ``() -> Driver``
    (scripted baselines, your own driver; it gets observations only). ValueError names the valid drivers
    otherwise. The spec is a string, so worker processes rebuild the factory from it."""
    if spec == "expert":
        from riskdistill.sim.expert import ExpertDriver

        return ExpertDriver
    if spec == "expert-plan":  # the expert's plan through the student's controller: the controller's ceiling
        from riskdistill.sim.expert import ExpertPlanDriver

        return ExpertPlanDriver
    if is_checkpoint_dir(spec):
        return StudentDriverFactory(str(Path(spec).resolve()), rig)
    if _IMPORT_SPEC.match(spec) and not Path(spec).exists():
        import importlib

        module, _, name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"driver {spec!r}: cannot import {name!r} from {module!r} ({exc})") from exc
        if not callable(factory):
            raise ValueError(f"driver {spec!r}: {name!r} is not callable")
        return factory
    hint = ""
    if Path(spec).is_dir():
        hint = " (the folder has no model.safetensors + config.json)"
    raise ValueError(
        f"unknown driver {spec!r}{hint}; valid drivers: ['expert', 'expert-plan'], a student checkpoint "
        "folder (model.safetensors + config.json, written by riskdistill.models.save_student) or "
        "'package.module:factory' (a callable () -> Driver)"
    )


def driver_bev_grid(driver: Any) -> Any:
    """The BEV grid of a driver's risk map: ``driver.grid`` / ``driver.bev_grid`` or its student's config."""
    for name in ("grid", "bev_grid"):
        g = getattr(driver, name, None)
        if g is not None:
            return g() if callable(g) else g
    student = getattr(driver, "student", None)
    cfg = getattr(student, "cfg", None)
    return cfg.bev_grid() if cfg is not None and hasattr(cfg, "bev_grid") else None
