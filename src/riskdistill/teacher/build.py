"""Teachers from configuration dicts: what ``riskdistill label`` and the experiment pipeline build.

The functions are module level so a Ray actor pool can ship them as factories
(``functools.partial(make_vlm_teacher, config)``). Heavy imports (transformers, openai) happen only when a VLM
teacher is built.
"""

from __future__ import annotations

from typing import Any


def make_vlm_teacher(config: dict[str, Any], detector: dict[str, Any] | None = None) -> Any:
    """A VLM teacher (module level, so Ray can ship it as a factory): ground-truth grounding, or an
    open-vocabulary detector (OWLv2 or Grounding DINO) matched to the 3D objects when ``detector`` (a
    ``DetectorConfig`` dict)."""
    from riskdistill.teacher.vlm import VLMTeacher, VLMTeacherConfig

    grounder = None
    if detector is not None:
        from riskdistill.teacher.detector import DetectorConfig, build_detector

        grounder = build_detector(DetectorConfig.from_dict(detector, source="--detector"))
    return VLMTeacher(VLMTeacherConfig.from_dict(config, source="VLM teacher config"), grounder=grounder)


def make_oracle_teacher(config: dict[str, Any]) -> Any:
    from riskdistill.teacher.oracle import OracleConfig, OracleTeacher

    return OracleTeacher(OracleConfig.from_dict(config, source="oracle teacher config"))


def make_teacher(kind: str, config: dict[str, Any], detector: dict[str, Any] | None = None) -> Any:
    """``kind`` = ``"oracle"`` (``config``: an ``OracleConfig`` dict) or ``"vlm"`` (a ``VLMTeacherConfig``
    dict, plus an optional ``DetectorConfig`` dict for open-vocabulary grounding)."""
    if kind == "oracle":
        return make_oracle_teacher(config)
    if kind == "vlm":
        return make_vlm_teacher(config, detector)
    raise ValueError(f"unknown teacher {kind!r}; valid teachers: ['oracle', 'vlm']")
