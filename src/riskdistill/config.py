"""Typed, strict configuration objects.

Every configurable component ``X`` has an ``XConfig`` that derives from :class:`StrictConfig`. Configs
are validated when built; an unknown key is an error that names the key and lists the valid ones, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

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
