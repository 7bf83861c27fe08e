"""Reading a VLM reply: validate, repair what is safe to repair, and turn it into a :class:`FrameLabel`.

Policy (``docs/teachers.md`` has the table):

Repaired (each repair is recorded in ``Provenance.decoding["repairs"]``):

- prose or Markdown code fences around the JSON: the first JSON object of the text is used
  (``prose``, ``code_fence``);
- a reply cut off (token limit) after at least one complete object entry: the text is cut after the last
  complete entry of ``objects`` (or the last complete top-level member) and the open brackets are closed
  (``closed_truncated``); a partial entry is never kept. Nothing complete: ``truncated``;
- numbers written as strings (``"0.7"``, ``"12"``) and integral floats as ids (``12.0``): converted
  (``coerced_number``); a missing ``summary`` (``missing_summary``) or ``reason`` (``missing_reason``): empty;
  control characters inside strings: accepted and replaced by spaces; invisible format characters
  (bidirectional overrides such as U+202E, zero-width characters) and lone surrogates: removed
  (``format_chars``); reasons / summaries longer than the configured limits (the teacher's
  ``reason_max_chars`` / ``summary_max_chars``, the ones its schema sends): cut (``reason_cut``,
  ``summary_cut``); unknown extra keys: ignored (``extra_keys``);
- a risk within 1e-6 outside [0, 1] (float formatting noise): clipped (``clipped``);
- an id listed twice: the first entry counts (list order is the model's ranking), later ones are dropped
  (``duplicate_id``); with ``ParseConfig(duplicate_ids="reject")`` it is an error instead.

Rejected (a :class:`ReplyError` with its ``kind``; the teacher re-asks, then records the failure):
``empty`` (no text), ``no_json`` (no ``{``), ``syntax`` (broken JSON that is not a truncation, or JSON
nested deeper than :data:`MAX_JSON_DEPTH` levels), ``truncated`` (cut off before any complete entry),
``schema`` (wrong types or missing ``objects``, ``id`` or ``risk``; an empty ``objects`` list when objects
were listed: the schema sent asks for at least one; percent strings like ``"70%"``; booleans), ``nan``
(NaN or infinity), ``range`` (risk < 0 or > 1: a score of 70 is *not* read as 70 %, the scale is
ambiguous), ``unknown_id`` (an id that was not listed), ``duplicate_id`` (only with
``duplicate_ids="reject"``). Transport failures of the backends use ``http``, ``timeout``, ``connection``,
``protocol`` (the server answered, but not with a chat completion: a body that is not UTF-8 or not JSON,
e.g. an HTML page with status 200) and ``backend``; ``input`` is a frame whose own data cannot be sent (an
image that does not decode).

Raw text is kept for every failure and every label, at most :data:`MAX_RAW_CHARS` characters; a longer
text is cut and its full length recorded (``ReplyError.raw_chars``; a label's
``provenance.decoding["raw_response_chars"]``).

Objects the reply does not mention get no entry in the label (the label lists the key objects the VLM
chose; on the BEV map they have risk 0). Ranks follow the risk, highest first; ties keep the reply's order.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from riskdistill.config import StrictConfig
from riskdistill.teacher.objects import GroundedObject
from riskdistill.teacher.schema import MAX_REASON_CHARS, FrameLabel, Provenance

ReplyErrorKind = Literal[
    "empty",
    "no_json",
    "syntax",
    "truncated",
    "schema",
    "nan",
    "range",
    "unknown_id",
    "duplicate_id",
    "http",
    "timeout",
    "connection",
    "backend",
    "protocol",
    "input",
]
REPLY_ERROR_KINDS: tuple[str, ...] = ReplyErrorKind.__args__  # type: ignore[attr-defined]
TRANSPORT_KINDS = frozenset({"http", "timeout", "connection", "backend", "protocol"})
RANGE_TOLERANCE = 1e-6
MAX_SUMMARY_CHARS = 4 * MAX_REASON_CHARS
MAX_JSON_DEPTH = 32  # a reply's JSON needs 3 levels; deeper nesting is refused before json.loads recurses
MAX_RAW_CHARS = 16_384  # raw text kept per label / failure (a reply of 512 tokens is ~2,000 characters)


def cap_raw(text: str | None) -> tuple[str, int | None]:
    """``(text, None)``, or its first :data:`MAX_RAW_CHARS` characters and the full length when longer."""
    text = text if text is not None else ""
    if len(text) <= MAX_RAW_CHARS:
        return text, None
    return text[:MAX_RAW_CHARS], len(text)


class ReplyError(Exception):
    """A reply (or a request) that gave no usable label. ``kind`` is one of :data:`REPLY_ERROR_KINDS`;
    ``raw_text`` the model's text (or the server's body), at most :data:`MAX_RAW_CHARS` characters
    (``raw_chars``: the full length when it was cut, else None); ``status`` the HTTP status if any."""

    def __init__(
        self,
        kind: str,
        message: str,
        raw_text: str | None = "",
        status: int | None = None,
        attempts: int = 1,
        raw_chars: int | None = None,
    ):
        if kind not in REPLY_ERROR_KINDS:
            raise ValueError(f"unknown ReplyError kind {kind!r}; valid: {list(REPLY_ERROR_KINDS)}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.raw_text, cut = cap_raw(raw_text)
        self.raw_chars = cut if cut is not None else raw_chars
        self.status = status
        self.attempts = attempts

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able failure record (kind, message, raw text, its full length if cut, status, attempts)."""
        return {
            "kind": self.kind,
            "message": self.message,
            "raw_text": self.raw_text,
            "raw_chars": self.raw_chars,
            "status": self.status,
            "attempts": self.attempts,
        }

    def __reduce__(self):  # picklable across process / Ray boundaries
        args = (self.kind, self.message, self.raw_text, self.status, self.attempts, self.raw_chars)
        return (ReplyError, args)


class ParseConfig(StrictConfig):
    """How strict the reply parser is (see the module docstring for the policy)."""

    repair: bool = True  # False: the reply must be exactly one valid JSON object, nothing else
    close_truncated: bool = True
    coerce_numeric_strings: bool = True
    duplicate_ids: Literal["keep_first", "reject"] = "keep_first"
    reason_max_chars: int = Field(default=MAX_REASON_CHARS, ge=1, le=MAX_REASON_CHARS)


@dataclass(frozen=True)
class ParsedReply:
    """A validated reply: ``(id, risk, reason)`` in the reply's own order (its ranking), the summary and
    the repairs applied."""

    objects: list[tuple[int, float, str]]
    summary: str
    repairs: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ JSON text
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|$)", re.DOTALL)
_CTRL = re.compile(r"[\x00-\x1f\x7f]")


def _scan_object(text: str, start: int) -> tuple[str, int | None, list[str]]:
    """Scan the JSON value starting with ``{`` at ``start``. Returns ``("complete", end, [])`` with the index
    after the matching ``}``, ``("mismatch", None, [])`` for a closing bracket that does not match,
    ``("deep", None, [])`` for brackets nested deeper than :data:`MAX_JSON_DEPTH`, or ``("open", cut,
    closers)`` when the text ends first: the last safe cut position (after a complete entry of the top
    object or of one of its arrays; None if there is none) and the brackets that close it."""
    stack: list[str] = []
    in_str = esc = False
    cut: int | None = None
    cut_stack: list[str] = []
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
            if len(stack) > MAX_JSON_DEPTH:
                return "deep", None, []
        elif ch in "}]":
            if not stack or stack[-1] != ch:
                return "mismatch", None, []
            stack.pop()
            if not stack:
                return "complete", i + 1, []
            if len(stack) <= 2:
                cut, cut_stack = i + 1, list(stack)
        elif ch == "," and len(stack) <= 2:
            cut, cut_stack = i, list(stack)
    return "open", cut, cut_stack


def extract_json_text(text: str, config: ParseConfig, repairs: list[str]) -> str:
    """The JSON object text of a reply (fences / prose stripped, truncation closed when safe)."""
    if text is None or not text.strip():
        raise ReplyError("empty", "the reply is empty", text)
    if not config.repair:
        return text.strip()
    body = text
    m = _FENCE.search(text)
    if m and "{" in m.group(1):
        body = m.group(1)
        repairs.append("code_fence")
    start = body.find("{")
    if start < 0:
        raise ReplyError("no_json", "no JSON object in the reply", text)
    status, pos, closers = _scan_object(body, start)
    if status == "mismatch":
        raise ReplyError("syntax", "mismatched brackets in the JSON object", text)
    if status == "deep":
        raise ReplyError("syntax", f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels", text)
    if status == "complete":
        assert pos is not None
        if body[:start].strip() or body[pos:].strip():
            repairs.append("prose")
        return body[start:pos]
    if pos is None or not config.close_truncated:
        raise ReplyError("truncated", "the reply ends before the JSON object is complete", text)
    if body[:start].strip():
        repairs.append("prose")
    repairs.append("closed_truncated")
    return body[start:pos] + "".join(reversed(closers))


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def load_json(text: str, raw: str, strict: bool) -> Any:
    """``json.loads`` whose every failure is a :class:`ReplyError` carrying the raw text (also JSON nested
    too deeply for the parser's recursion, which raises ``RecursionError``)."""
    try:
        return json.loads(text, strict=strict, parse_constant=_reject_constant)
    except ValueError as exc:
        if "non-finite number" in str(exc):
            raise ReplyError("nan", f"the reply contains {str(exc).rsplit(' ', 1)[-1]}", raw) from None
        raise ReplyError("syntax", f"invalid JSON ({exc})", raw) from None
    except RecursionError:
        raise ReplyError("syntax", "the JSON is nested too deeply to parse", raw) from None


# ------------------------------------------------------------------------------------------ values
def _number(v: Any, what: str, raw: str, config: ParseConfig, repairs: list[str]) -> float:
    if isinstance(v, bool) or v is None:
        raise ReplyError("schema", f"{what} must be a number, got {json.dumps(v)}", raw)
    if isinstance(v, str):
        s = v.strip()
        if not config.coerce_numeric_strings or not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s):
            if s.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                raise ReplyError("nan", f"{what} is {v!r}", raw)
            raise ReplyError("schema", f"{what} must be a number, got the string {v!r}", raw)
        repairs.append("coerced_number")
        v = float(s)
    if not isinstance(v, int | float):
        raise ReplyError("schema", f"{what} must be a number, got {type(v).__name__}", raw)
    v = float(v)
    if not math.isfinite(v):
        raise ReplyError("nan", f"{what} is {v}", raw)
    return v


def _visible(s: str, repairs: list[str]) -> str:
    """``s`` without invisible format characters (Unicode category Cf: bidirectional overrides and
    isolates, zero-width spaces and joiners, BOM) and lone surrogates (Cs), which would let a reason read
    differently from what it stores."""
    if s.isascii():
        return s
    out = "".join(ch for ch in s if unicodedata.category(ch) not in ("Cf", "Cs"))
    if len(out) != len(s):
        repairs.append("format_chars")
    return out


def _text(v: Any, what: str, raw: str, limit: int, repairs: list[str]) -> str:
    if v is None:
        repairs.append(f"missing_{what}")
        return ""
    if not isinstance(v, str):
        raise ReplyError("schema", f"{what} must be a string, got {type(v).__name__}", raw)
    s = " ".join(_visible(_CTRL.sub(" ", v), repairs).split())
    if len(s) > limit:
        repairs.append(f"{what}_cut")
        s = s[: limit - 1].rstrip() + "…"
    return s


def parse_reply(
    text: str | None,
    object_ids: Sequence[int] | set[int],
    config: ParseConfig | None = None,
    summary_max_chars: int = MAX_SUMMARY_CHARS,
) -> ParsedReply:
    """Validate (and repair) a reply against the listed ``object_ids``; raises :class:`ReplyError`.
    Reasons are cut at ``config.reason_max_chars``, the summary at ``summary_max_chars``."""
    config = config or ParseConfig()
    raw = text or ""
    repairs: list[str] = []
    body = extract_json_text(raw, config, repairs)
    data = load_json(body, raw, strict=not config.repair)
    if not isinstance(data, dict):
        raise ReplyError("schema", f"the reply must be a JSON object, got {type(data).__name__}", raw)
    if "objects" not in data:
        if "closed_truncated" in repairs:
            raise ReplyError("truncated", "the reply ends before its 'objects' list", raw)
        raise ReplyError("schema", "the reply has no 'objects' list", raw)
    extra = set(data) - {"objects", "summary"}
    items = data["objects"]
    if not isinstance(items, list):
        raise ReplyError("schema", f"'objects' must be a list, got {type(items).__name__}", raw)
    allowed = {int(i) for i in object_ids}
    if not items and allowed:
        raise ReplyError(
            "schema",
            f"'objects' is empty, but {len(allowed)} object(s) were listed and the reply schema asks for at "
            f"least one (minItems 1)",
            raw,
        )
    out: list[tuple[int, float, str]] = []
    seen: set[int] = set()
    for k, item in enumerate(items):
        where = f"objects[{k}]"
        if not isinstance(item, dict):
            raise ReplyError("schema", f"{where} must be an object, got {type(item).__name__}", raw)
        for key in ("id", "risk"):
            if key not in item:
                raise ReplyError("schema", f"{where} has no {key!r}", raw)
        extra |= {f"{where}.{x}" for x in set(item) - {"id", "risk", "reason"}}
        oid_f = _number(item["id"], f"{where}.id", raw, config, repairs)
        if oid_f != int(oid_f):
            raise ReplyError("schema", f"{where}.id must be an integer, got {item['id']!r}", raw)
        if not isinstance(item["id"], int) and "coerced_number" not in repairs:
            repairs.append("coerced_number")
        oid = int(oid_f)
        if oid not in allowed:
            raise ReplyError(
                "unknown_id", f"{where}.id {oid} is not one of the listed ids {sorted(allowed)}", raw
            )
        risk = _number(item["risk"], f"{where}.risk", raw, config, repairs)
        if not 0.0 <= risk <= 1.0:
            if config.repair and -RANGE_TOLERANCE <= risk <= 1.0 + RANGE_TOLERANCE:
                repairs.append("clipped")
                risk = min(max(risk, 0.0), 1.0)
            else:
                raise ReplyError("range", f"{where}.risk {risk} is outside [0, 1]", raw)
        reason = _text(item.get("reason"), "reason", raw, config.reason_max_chars, repairs)
        if oid in seen:
            if config.duplicate_ids == "reject":
                raise ReplyError("duplicate_id", f"{where}.id {oid} is listed more than once", raw)
            repairs.append("duplicate_id")
            continue
        seen.add(oid)
        out.append((oid, risk, reason))
    summary = _text(data.get("summary"), "summary", raw, min(summary_max_chars, MAX_SUMMARY_CHARS), repairs)
    if extra:
        repairs.append("extra_keys")
    return ParsedReply(objects=out, summary=summary, repairs=list(dict.fromkeys(repairs)))


# ------------------------------------------------------------------------------------------ labels
def build_label(
    frame_id: str,
    parsed: ParsedReply,
    objects: Mapping[int, GroundedObject],
    provenance: Provenance,
) -> FrameLabel:
    """A :class:`FrameLabel` from a parsed reply: ranks by risk (ties keep the reply's order), class,
    cameras and 2D box from the grounded objects, ``frame_risk`` = the maximum risk (0 without objects)."""
    order = sorted(range(len(parsed.objects)), key=lambda k: (-parsed.objects[k][1], k))
    entries = []
    for rank, k in enumerate(order, start=1):
        oid, risk, reason = parsed.objects[k]
        g = objects[oid]
        box = [float(b) for b in g.box2d]
        valid_box = all(math.isfinite(b) for b in box) and box[2] >= box[0] and box[3] >= box[1]
        entries.append(
            {
                "object_id": oid,
                "cls": g.cls,
                "cameras": list(g.cameras) or [g.camera],
                "box2d": {g.camera: box} if valid_box else None,
                "risk": risk,
                "rank": rank,
                "reason": reason,
            }
        )
    return FrameLabel.model_validate(
        {
            "frame_id": frame_id,
            "objects": entries,
            "frame_risk": max((e["risk"] for e in entries), default=0.0),
            "summary": parsed.summary,
            "provenance": provenance,
        }
    )
