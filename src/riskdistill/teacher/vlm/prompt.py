"""Prompt templates (versioned files) and the reply schema the VLM must follow.

A template is a Jinja file ``prompts/<template_id>.jinja`` (or any ``.jinja`` path) with two sections,
introduced by the lines ``### system`` and ``### user``. Its id is the file stem (``risk_rank_v2``); its
hash is the sha256 of the file text, so editing a template changes ``Provenance.prompt_hash`` and the
teacher's config hash (labels made with the old text are not reused). A new wording is a new file
(``risk_rank_v3.jinja``), never an edit of a released one.

The reply is JSON matching :class:`RiskReply` (``{"objects": [{"id", "risk", "reason"}], "summary"}``);
:func:`reply_json_schema` narrows its JSON Schema to one frame (``id`` restricted to the listed ids,
at most one entry per listed object, string lengths bounded) for constrained decoding and
``response_format``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from riskdistill.teacher.objects import GroundedObject

PROMPT_DIR = Path(__file__).parent / "prompts"
DEFAULT_TEMPLATE = "risk_rank_v2"  # v2 states the oracle's notion of risk and its score scale


class PromptError(ValueError):
    """A prompt template that cannot be found or read (the message names the file)."""


# ------------------------------------------------------------------------------------------ reply model
class ObjectReply(BaseModel):
    """One key object of the reply: a listed object id, its risk in [0, 1] and a short reason."""

    model_config = ConfigDict(extra="forbid")
    id: int
    risk: float = Field(ge=0.0, le=1.0)
    reason: str


class RiskReply(BaseModel):
    """The whole reply: key objects from most to least risky, and a one-sentence summary."""

    model_config = ConfigDict(extra="forbid")
    objects: list[ObjectReply]
    summary: str


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline_refs(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k not in ("$defs", "title")}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


@lru_cache(maxsize=1)
def _base_schema_json() -> str:
    schema = RiskReply.model_json_schema()
    return json.dumps(_inline_refs(schema, schema.get("$defs", {})))


def reply_json_schema(
    object_ids: Sequence[int] | None = None,
    reason_max_chars: int | None = None,
    summary_max_chars: int | None = None,
) -> dict[str, Any]:
    """JSON Schema of :class:`RiskReply` without ``$ref`` (every object closed with
    ``additionalProperties: false``), narrowed to a frame: ``id`` one of ``object_ids`` and at most
    ``len(object_ids)`` entries (at least one when objects are listed); strings at most the given lengths."""
    schema = json.loads(_base_schema_json())
    schema["additionalProperties"] = False
    objects = schema["properties"]["objects"]
    item = objects["items"]
    item["additionalProperties"] = False
    if object_ids is not None:
        ids = sorted({int(i) for i in object_ids})
        item["properties"]["id"] = {"type": "integer", "enum": ids}
        objects["maxItems"] = len(ids)
        objects["minItems"] = min(1, len(ids))
    if reason_max_chars is not None:
        item["properties"]["reason"]["maxLength"] = int(reason_max_chars)
    if summary_max_chars is not None:
        schema["properties"]["summary"]["maxLength"] = int(summary_max_chars)
    return schema


# ------------------------------------------------------------------------------------------ templates
def _split_sections(text: str, path: Path) -> tuple[str, str]:
    lines = text.splitlines()
    marks = {ln.strip(): i for i, ln in enumerate(lines) if ln.strip() in ("### system", "### user")}
    if set(marks) != {"### system", "### user"} or marks["### system"] > marks["### user"]:
        raise PromptError(f"{path}: a prompt template needs a '### system' line, then a '### user' line")
    system = "\n".join(lines[marks["### system"] + 1 : marks["### user"]])
    user = "\n".join(lines[marks["### user"] + 1 :])
    return system, user


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded template: ``template_id`` (file stem), ``prompt_hash`` (sha256 prefix of the file text)."""

    template_id: str
    path: Path
    text: str
    prompt_hash: str
    _system: Any
    _user: Any

    def render(self, **variables: Any) -> tuple[str, str]:
        """(system text, user text) with the template variables filled in."""
        return self._system.render(**variables).strip(), self._user.render(**variables).strip()


def list_templates() -> list[str]:
    """Ids of the templates shipped with the package."""
    return sorted(p.stem for p in PROMPT_DIR.glob("*.jinja"))


@lru_cache(maxsize=16)
def load_template(name_or_path: str) -> PromptTemplate:
    """A shipped template by id (``"risk_rank_v1"``) or any ``.jinja`` file by path."""
    import jinja2

    path = Path(name_or_path)
    if path.suffix != ".jinja":
        path = PROMPT_DIR / f"{name_or_path}.jinja"
        if not path.is_file():
            raise PromptError(
                f"unknown prompt template {name_or_path!r}; shipped templates: {list_templates()} "
                f"(or give the path of a .jinja file)"
            )
    if not path.is_file():
        raise PromptError(f"{path}: prompt template file not found")
    text = path.read_text(encoding="utf-8")
    system, user = _split_sections(text, path)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
    try:
        tsys, tuser = env.from_string(system), env.from_string(user)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{path}: template syntax error on line {exc.lineno}: {exc.message}") from exc
    return PromptTemplate(
        template_id=path.stem,
        path=path,
        text=text,
        prompt_hash=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
        _system=tsys,
        _user=tuser,
    )


# ------------------------------------------------------------------------------------------ objects
def _r(v: float, nd: int = 1) -> float | None:
    return round(float(v), nd) if math.isfinite(v) else None


def object_line(obj: GroundedObject, show_box: bool) -> str:
    """One object as a compact JSON line for the prompt (the box only when its camera is shown)."""
    d: dict[str, Any] = {"id": int(obj.object_id), "class": obj.cls, "camera": obj.camera}
    if show_box and all(math.isfinite(b) for b in obj.box2d):
        d["box"] = [round(float(b)) for b in obj.box2d]
    d["distance_m"] = _r(obj.distance_m)
    d["closing_speed_mps"] = _r(obj.closing_speed_mps)
    d["position_m"] = [_r(obj.center_xy_m[0]), _r(obj.center_xy_m[1])]
    return json.dumps(d, separators=(", ", ": "))


def select_objects(
    objects: Sequence[GroundedObject], cameras: Sequence[str], max_objects: int, include_unseen: bool
) -> list[GroundedObject]:
    """The objects put into the prompt: those visible in a shown camera (all with ``include_unseen``),
    nearest first (ties by id), at most ``max_objects``, one per id (the first)."""
    shown = set(cameras)
    seen_ids: set[int] = set()
    keep = []
    for o in sorted(objects, key=lambda o: (o.distance_m, o.object_id)):
        if o.object_id in seen_ids:
            continue
        if include_unseen or o.camera in shown or shown.intersection(o.cameras):
            keep.append(o)
            seen_ids.add(o.object_id)
    return keep[:max_objects]
