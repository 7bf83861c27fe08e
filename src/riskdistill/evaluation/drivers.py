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
_ENGINE_CACHE: dict[tuple, Any] = {}


#: ``StudentDriver`` options a driver spec may carry (``evaluate_suite(driver_options=...)``, the CLI's
#: ``--plan-every-steps`` / ``--engine`` / ``--occupancy-brake`` / ``--plan-output``); they change the
#: drive, so they are part of the resume key (``occupancy_brake`` only when on and ``plan_output`` only
#: when not ``auto``, so folders evaluated without them resume as before).
DRIVER_OPTIONS = ("plan_every_steps", "engine", "occupancy_brake", "plan_output")
#: Options that change how fast a student drives, never what it does, so they are not part of the resume key:
#: where the ``onnx`` engine keeps its graph and whether the driver reuses the outputs of a repeated
#: observation (``StudentDriver(reuse_repeated=...)``, on unless False; off only for benchmarks).
SPEED_OPTIONS = ("onnx_dir", "reuse_repeated")
#: What a folder evaluated before the options existed was driven with.
LEGACY_DRIVER_OPTIONS = {"plan_every_steps": 1, "engine": "eager"}
#: The engine closed-loop evaluation uses unless told otherwise (temporal students: ``eager``, the export
#: has no history input). Measured in ``benchmarks/bench_inference.py`` and ``bench_closed_loop.py``.
EVAL_DEFAULT_ENGINE = "onnx"


@dataclass(frozen=True)
class StudentDriverFactory:
    """Builds a ``riskdistill.models.StudentDriver`` for a checkpoint folder. Picklable (it holds strings
    and numbers only); the student (and its inference engine) is loaded once per process and shared by the
    routes that process runs.

    The rig is ``rig`` if given, else the checkpoint's ``config.json`` key ``"rig"`` (top level or under
    ``"data"``), else the built-in rig named in the manifest of the training data (``data.root``), else
    :data:`DEFAULT_STUDENT_RIG`; the image size is the student config's ``image_hw``. ``plan_every_steps``
    and ``engine`` configure the driver (None: ``StudentDriver``'s planning rate and
    :data:`EVAL_DEFAULT_ENGINE`, see :meth:`options`); ``occupancy_brake``: the driver stops when its own
    occupancy shows an obstacle in its path (``models.occupancy_brake.OccupancyBrake``, default settings);
    ``plan_output``: which output drives (``models.driver.PLAN_OUTPUTS``; None: ``auto``); ``onnx_dir`` is
    where the ``onnx`` engine finds (or exports, :meth:`prepare`) its graph (default
    ``models.engines.engine_cache_dir()``), shared by the worker processes; ``reuse_repeated=False`` turns
    off the driver's reuse of a repeated observation's outputs (:data:`SPEED_OPTIONS`).
    """

    checkpoint: str
    rig: str | None = None
    plan_every_steps: int | None = None
    engine: str | None = None
    onnx_dir: str | None = None
    occupancy_brake: bool | None = None
    plan_output: str | None = None
    reuse_repeated: bool = True

    def load(self) -> Any:
        if self.checkpoint not in _STUDENT_CACHE:
            import torch

            from riskdistill.models import load_student

            torch.set_num_threads(1)  # routes run in parallel processes
            _STUDENT_CACHE[self.checkpoint] = load_student(self.checkpoint, map_location="cpu").eval()
        return _STUDENT_CACHE[self.checkpoint]

    def check(self) -> None:
        """Load the checkpoint once (not cached) so that a broken one fails the evaluation up front instead
        of crashing every route, and refuse a rig that does not match the one it was trained with
        (:meth:`trained_rig`; cameras, mounting, field of view); ValueError naming the folder / both rigs."""
        from riskdistill.contracts.compat import check_rig
        from riskdistill.contracts.rig import load_rig
        from riskdistill.models import load_student

        try:
            student = load_student(self.checkpoint, map_location="cpu")
        except Exception as exc:
            raise ValueError(f"driver checkpoint {self.checkpoint} cannot be loaded: {exc}") from exc
        trained = self.trained_rig()
        given = self.checkpoint_rig()
        try:
            rig = load_rig(given)
        except Exception as exc:
            raise ValueError(f"driver checkpoint {self.checkpoint}: evaluation rig {given!r}: {exc}") from exc
        if trained is not None:
            check_rig(
                trained[1],
                rig,
                f"rig {trained[0]} (checkpoint {self.checkpoint})",
                f"rig {given!r} (the evaluation)",
                student.cfg.cameras,
            )

    def trained_rig(self) -> tuple[str, Any] | None:
        """``(where, Rig)`` of the rig the checkpoint was trained with: the ``"rig"`` key of its config, else
        the rig stored in its training data's manifest; None when neither is known."""
        from riskdistill.contracts.rig import Rig, load_rig

        cfg_path = Path(self.checkpoint) / "config.json"
        cfg = load_json(cfg_path) if cfg_path.is_file() else {}
        data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
        name = cfg.get("rig") or data.get("rig")
        if name:
            return f"{name!r} ({cfg_path})", load_rig(name)
        manifest = Path(data["root"]) / "manifest.json" if data.get("root") else None
        if manifest is not None and manifest.is_file():
            stored = load_json(manifest).get("rig")
            if isinstance(stored, dict):
                rig = Rig.from_dict(stored, source=f"{manifest}: rig")
                return f"{rig.name!r} of the training data ({manifest})", rig
        return None

    def options(self) -> dict[str, Any]:
        """The resolved driver options (:data:`DRIVER_OPTIONS`), defaults filled in: ``StudentDriver``'s
        planning rate, :data:`EVAL_DEFAULT_ENGINE` (``eager`` for a temporal student); ``occupancy_brake``
        only when on, ``plan_output`` only when not ``auto``."""
        from riskdistill.models.driver import DEFAULT_PLAN_EVERY_STEPS
        from riskdistill.models.io import load_student_config

        engine = self.engine
        if engine is None:
            temporal = load_student_config(self.checkpoint).temporal.enabled
            engine = "eager" if temporal else EVAL_DEFAULT_ENGINE
        return {
            "plan_every_steps": int(
                DEFAULT_PLAN_EVERY_STEPS if self.plan_every_steps is None else self.plan_every_steps
            ),
            "engine": str(engine),
            **({"occupancy_brake": True} if self.occupancy_brake else {}),
            **({"plan_output": self.plan_output} if self.plan_output not in (None, "auto") else {}),
        }

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

    def example_observation(self, student: Any) -> Any:
        """A batch-1 observation shaped like the driver's (the rig's calibration, black images)."""
        import numpy as np

        from riskdistill.contracts.agent import AgentInput, EgoState
        from riskdistill.contracts.observation import observation_from_agent_input
        from riskdistill.contracts.rig import load_rig, resize_rig
        from riskdistill.types import Command

        h, w = (int(v) for v in student.cfg.image_hw)
        rig = resize_rig(load_rig(self.checkpoint_rig()), h, w)
        ai = AgentInput(
            timestamp_s=0.0,
            ego=EgoState(0.0, 0.0, 0.0, 0.0),
            command=Command.LANE_FOLLOW,
            target_point_ego=np.array([20.0, 0.0]),
            images=np.zeros((len(rig.cameras), h, w, 3), dtype=np.uint8),
            K=rig.K(),
            T_ego_from_cam=rig.T_ego_from_cam(),
            camera_names=tuple(rig.camera_names),
        )
        return observation_from_agent_input(ai, student.cfg.cameras, (h, w)).batched()

    def prepare(self) -> None:
        """For the ``onnx`` engine: export the graph once into ``onnx_dir`` (the workers load it instead of
        each exporting it); nothing for other engines. ValueError when the export fails."""
        if self.options()["engine"] != "onnx":
            return
        from riskdistill.models import load_student
        from riskdistill.models.engines import OnnxEngine

        student = load_student(self.checkpoint, map_location="cpu").eval()  # leaves this process's threads
        engine = OnnxEngine(
            student, student.has_risk_head, onnx_path=self.onnx_dir, with_occupancy=bool(self.occupancy_brake)
        )
        try:
            engine.prepare(self.example_observation(student))
        except Exception as exc:
            raise ValueError(
                f"driver checkpoint {self.checkpoint}: the onnx engine could not export the student "
                f"({type(exc).__name__}: {exc}); evaluate with engine 'eager' (--engine eager)"
            ) from exc

    def _engine(self, student: Any) -> Any:
        opts = self.options()
        brake = bool(self.occupancy_brake)
        key = (self.checkpoint, opts["engine"], self.onnx_dir, brake)
        if key not in _ENGINE_CACHE:
            from riskdistill.models.engines import build_engine

            extra = {"onnx_path": self.onnx_dir} if opts["engine"] == "onnx" and self.onnx_dir else {}
            _ENGINE_CACHE[key] = build_engine(
                opts["engine"], student, student.has_risk_head, with_occupancy=brake, **extra
            )
        return _ENGINE_CACHE[key]

    def __call__(self) -> Driver:
        from riskdistill.models import StudentDriver
        from riskdistill.models.occupancy_brake import OccupancyBrake

        student = self.load()
        return StudentDriver(
            student,
            self.checkpoint_rig(),
            tuple(student.cfg.image_hw),
            plan_every_steps=self.options()["plan_every_steps"],
            engine=self._engine(student),
            occupancy_brake=OccupancyBrake() if self.occupancy_brake else None,
            plan_output=self.plan_output or "auto",
            reuse_repeated=self.reuse_repeated,
        )


def is_checkpoint_dir(spec: str) -> bool:
    p = Path(spec)
    return p.is_dir() and (p / "model.safetensors").is_file() and (p / "config.json").is_file()


def make_driver_factory(
    spec: str, rig: str | None = None, options: dict[str, Any] | None = None
) -> DriverFactory:
    """Turn a driver spec into a factory: ``"expert"`` (the privileged expert, the one factory that is given
    the environment, see :func:`riskdistill.sim.rollout.build_driver`), a student checkpoint folder
    (:class:`StudentDriverFactory`) or ``"package.module:name"``, an importable callable ``() -> Driver``
    (scripted baselines, your own driver; it gets observations only). ValueError names the valid drivers
    otherwise. The spec is a string, so worker processes rebuild the factory from it. ``options``
    (:data:`DRIVER_OPTIONS` and :data:`SPEED_OPTIONS`) configure a student checkpoint's driver; other drivers
    take none (ValueError)."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - {*DRIVER_OPTIONS, *SPEED_OPTIONS})
    if unknown:
        raise ValueError(f"unknown driver option(s) {unknown}; valid: {[*DRIVER_OPTIONS, *SPEED_OPTIONS]}")
    if options and not is_checkpoint_dir(spec):
        raise ValueError(f"driver options {sorted(options)} apply to student checkpoints only, not {spec!r}")
    if spec == "expert":
        from riskdistill.sim.expert import ExpertDriver

        return ExpertDriver
    if spec == "expert-plan":  # the expert's plan through the student's controller: the controller's ceiling
        from riskdistill.sim.expert import ExpertPlanDriver

        return ExpertPlanDriver
    if is_checkpoint_dir(spec):
        factory = StudentDriverFactory(str(Path(spec).resolve()), rig, **options)
        _check_options(factory)
        return factory
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


def _check_options(factory: StudentDriverFactory) -> None:
    from riskdistill.models.driver import PLAN_OUTPUTS
    from riskdistill.models.engines import ENGINES

    opts = factory.options()
    if opts["engine"] not in ENGINES:
        raise ValueError(f"unknown inference engine {opts['engine']!r}; valid engines: {list(ENGINES)}")
    if opts["plan_every_steps"] < 1:
        raise ValueError(f"plan_every_steps must be >= 1, got {opts['plan_every_steps']}")
    if opts.get("plan_output", "auto") not in PLAN_OUTPUTS:
        raise ValueError(f"unknown plan_output {opts['plan_output']!r}; valid: {list(PLAN_OUTPUTS)}")
    if opts.get("occupancy_brake"):
        from riskdistill.models.io import load_student_config

        if "occupancy" not in load_student_config(factory.checkpoint).heads.enabled():
            raise ValueError(
                f"driver option occupancy_brake: the student {factory.checkpoint} has no occupancy head"
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
