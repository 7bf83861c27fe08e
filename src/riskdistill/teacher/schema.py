"""Per-frame risk labels of a teacher (oracle or VLM); see ``docs/label-schema.md``.

A :class:`FrameLabel` lists the risky objects of one frame (:class:`ObjectRisk`, linked to the 3D actor by
``object_id`` = ``actor_id`` of the annotation), ranked by risk, with a frame summary and the
:class:`Provenance` needed to reproduce it. Validation errors name the offending field; labels round-trip
through JSON (``FrameLabel.model_validate_json(label.model_dump_json())``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_REASON_CHARS = 200


def _unit_interval(v: float, name: str) -> float:
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number in [0, 1], got {v}")
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(_Strict):
    """Where a label comes from: enough to reproduce it."""

    teacher: Literal["oracle", "vlm", "control"]
    model_id: str = ""
    model_revision: str = ""
    prompt_template_id: str = ""
    prompt_hash: str = ""
    decoding: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    raw_response: str | None = None
    created_utc: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    package_version: str = ""
    config_hash: str = ""


class ObjectRisk(_Strict):
    """The risk of one object (actor) of a frame."""

    object_id: int  # actor_id of the annotation: the link to the 3D object
    cls: str  # ActorClass name, lower case ("pedestrian", "car", ...)
    cameras: list[str] = Field(default_factory=list)  # cameras in which the object is visible
    box2d: dict[str, list[float]] | None = None  # camera -> [x0, y0, x1, y1] pixels (x1, y1 exclusive)
    risk: float
    rank: int = Field(ge=1)
    reason: str = Field(max_length=MAX_REASON_CHARS)

    @field_validator("risk")
    @classmethod
    def _check_risk(cls, v: float) -> float:
        return _unit_interval(v, "risk")

    @field_validator("box2d")
    @classmethod
    def _check_box2d(cls, v: dict[str, list[float]] | None) -> dict[str, list[float]] | None:
        if v is None:
            return v
        for cam, box in v.items():
            if len(box) != 4 or not all(math.isfinite(b) for b in box):
                raise ValueError(f"box2d[{cam!r}] must be 4 finite numbers [x0, y0, x1, y1], got {box}")
            if box[2] < box[0] or box[3] < box[1]:
                raise ValueError(f"box2d[{cam!r}] must have x0 <= x1 and y0 <= y1, got {box}")
        return v


class FrameLabel(_Strict):
    """All object risks of one frame. ``objects`` are ordered by rank: ranks are 1..n and risk does not
    increase with rank; ``frame_risk`` is the maximum object risk (0 without objects)."""

    frame_id: str = Field(min_length=1)
    objects: list[ObjectRisk] = Field(default_factory=list)
    frame_risk: float
    summary: str = Field(max_length=4 * MAX_REASON_CHARS)
    provenance: Provenance

    @field_validator("frame_risk")
    @classmethod
    def _check_frame_risk(cls, v: float) -> float:
        return _unit_interval(v, "frame_risk")

    @model_validator(mode="after")
    def _check_ranks(self) -> FrameLabel:
        ranks = [o.rank for o in self.objects]
        if ranks != list(range(1, len(ranks) + 1)):
            raise ValueError(f"objects: ranks must be 1..{len(ranks)} in list order, got {ranks}")
        for a, b in zip(self.objects, self.objects[1:], strict=False):
            if b.risk > a.risk:
                raise ValueError(
                    f"objects: ranks must follow risk descending, rank {b.rank} (risk {b.risk}) > "
                    f"rank {a.rank} (risk {a.risk})"
                )
        ids = [o.object_id for o in self.objects]
        if len(set(ids)) != len(ids):
            raise ValueError(f"objects: object_id must be unique, got {ids}")
        want = max((o.risk for o in self.objects), default=0.0)
        if not math.isclose(self.frame_risk, want, abs_tol=1e-6):
            raise ValueError(f"frame_risk must be the maximum object risk {want}, got {self.frame_risk}")
        return self
