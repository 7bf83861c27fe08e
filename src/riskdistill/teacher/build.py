"""Teachers by name: the registry ``riskdistill label`` and the experiment pipeline build teachers from.

Each entry is a module-level factory ``(config: dict, detector: dict | None) -> teacher`` (module level, so
a Ray actor pool can ship it as ``functools.partial(factory, config)``). Heavy imports (transformers,
openai) happen only when a VLM teacher is built. A new teacher: a module with its config and class (copy
``teacher/controls.py``), and a factory here registered under its name; the registry-wide test checks that
it labels a recorded frame with a valid ``FrameLabel``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from riskdistill.registry import Registry

TeacherFactory = Callable[[dict[str, Any], dict[str, Any] | None], Any]
TEACHERS: Registry[TeacherFactory] = Registry("teacher")


def _no_detector(kind: str, detector: dict[str, Any] | None) -> None:
    if detector is not None:
        raise ValueError(f"the {kind} teacher reads ground-truth objects; a detector applies to 'vlm' only")


@TEACHERS.register("oracle")
def make_oracle_teacher(config: dict[str, Any], detector: dict[str, Any] | None = None) -> Any:
    """The privileged oracle (``config``: an ``OracleConfig`` dict)."""
    from riskdistill.teacher.oracle import OracleConfig, OracleTeacher

    _no_detector("oracle", detector)
    return OracleTeacher(OracleConfig.from_dict(config, source="oracle teacher config"))


@TEACHERS.register("vlm")
def make_vlm_teacher(config: dict[str, Any], detector: dict[str, Any] | None = None) -> Any:
    """A VLM teacher (``config``: a ``VLMTeacherConfig`` dict): ground-truth grounding, or an
    open-vocabulary detector (OWLv2 or Grounding DINO) matched to the 3D objects when ``detector`` (a
    ``DetectorConfig`` dict)."""
    from riskdistill.teacher.vlm import VLMTeacher, VLMTeacherConfig

    grounder = None
    if detector is not None:
        from riskdistill.teacher.detector import DetectorConfig, build_detector

        grounder = build_detector(DetectorConfig.from_dict(detector, source="--detector"))
    return VLMTeacher(VLMTeacherConfig.from_dict(config, source="VLM teacher config"), grounder=grounder)


@TEACHERS.register("footprint")
def make_footprint_teacher(config: dict[str, Any], detector: dict[str, Any] | None = None) -> Any:
    """The footprint control (``config``: a ``FootprintConfig`` dict): every object at one score."""
    from riskdistill.teacher.controls import FootprintConfig, FootprintTeacher

    _no_detector("footprint", detector)
    return FootprintTeacher(FootprintConfig.from_dict(config, source="footprint teacher config"))


@TEACHERS.register("corridor")
def make_corridor_teacher(config: dict[str, Any], detector: dict[str, Any] | None = None) -> Any:
    """The corridor control (``config``: a ``CorridorConfig`` dict; the study fills it in with
    ``teacher.controls.calibrate_corridor``): the expert's future path at the teacher maps' statistics."""
    from riskdistill.teacher.controls import CorridorConfig, CorridorTeacher

    _no_detector("corridor", detector)
    return CorridorTeacher(CorridorConfig.from_dict(config, source="corridor teacher config"))


def make_teacher(kind: str, config: dict[str, Any], detector: dict[str, Any] | None = None) -> Any:
    """The teacher registered as ``kind`` built from ``config``; an unknown kind lists the valid ones."""
    return TEACHERS.get(kind)(config, detector)
