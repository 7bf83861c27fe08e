"""Typed, strict configuration objects.

Every configurable component ``X`` has an ``XConfig`` that derives from :class:`StrictConfig`. Configs
are validated when built; an unknown key is an error that names the key and lists the valid ones, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from riskdistill.io import load_json_object


class ConfigError(ValueError):
    """A configuration could not be loaded; the message names the file and the field."""


class StrictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            valid = set(cls.model_fields)
            unknown = sorted(str(k) for k in data if k not in valid)
            if unknown:
                raise ValueError(f"unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(valid)}")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> Self:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"invalid {cls.__name__} in {source}:\n{exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> Self:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return cls.from_dict(load_json_object(path, ConfigError), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ------------------------------------------------------------------------------------------ merging
def deep_merge(base: dict[str, Any], update: dict[str, Any], replace: Sequence[str] = ()) -> dict[str, Any]:
    """A copy of ``base`` with ``update`` merged in: dicts recursively, except under the keys ``replace``
    (replaced whole, e.g. a grid given in full); other values replaced."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in replace:
            out[k] = deep_merge(out[k], v, replace)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.heads.risk.weight=2.0"`` -> ``(["model", "heads", "risk", "weight"], 2.0)``. The value is
    JSON when it parses as JSON (numbers, true/false/null, lists, quoted strings), else a plain string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or any(not p for p in parts):
        raise ConfigError(f"bad override {text!r}: expected key.sub.key=value (e.g. optimizer.lr=1e-3)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with every ``key.sub=value`` override applied (see :func:`parse_override`)."""
    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"bad override {text!r}: {where!r} is a value ({nxt!r}), not a section")
            node = nxt
        node[parts[-1]] = value
    return out
