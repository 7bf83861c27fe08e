"""What every VLM backend receives and returns.

A backend turns a batch of :class:`VLMRequest` (system text, images, user text, reply JSON Schema, seed)
into one reply text per request: ``generate(requests) -> list[str | ReplyError]``. A request that fails
in transport (HTTP error, timeout, refused connection, an exception in the model) comes back as a
:class:`~riskdistill.teacher.vlm.parse.ReplyError` in its slot, so one bad request never fails the batch.
Parsing and validation are not the backend's job (see ``parse.py``).
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from riskdistill.config import StrictConfig
from riskdistill.teacher.vlm.parse import ReplyError

_MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


class BackendUnavailableError(RuntimeError):
    """The model server stopped answering (a circuit breaker tripped). ``fatal``: the labelling runner stops
    the run with this message instead of recording one failure per frame; frames already written stay."""

    fatal = True


class DecodingConfig(StrictConfig):
    """Decoding parameters shared by the backends. ``temperature == 0``: greedy; otherwise sampled with
    ``seed`` (+ the attempt number on a re-ask). ``constrained``: JSON-schema constrained decoding
    (local: xgrammar; openai: ``response_format``; vllm: structured outputs)."""

    max_new_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = 0
    constrained: bool = True

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0.0


@dataclass(frozen=True)
class ImageInput:
    """One camera image of a prompt: a file on disk (a recorded JPEG: sent as-is, no re-encoding) or an
    ``[H, W, 3]`` uint8 array."""

    camera: str
    path: Path | None = None
    array: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.array is None):
            raise ValueError(f"ImageInput({self.camera!r}): give exactly one of path or array")

    def pil(self):
        """The image as an RGB ``PIL.Image``."""
        from PIL import Image

        if self.array is not None:
            return Image.fromarray(np.ascontiguousarray(self.array, dtype=np.uint8))
        assert self.path is not None
        try:
            with Image.open(self.path) as im:
                return im.convert("RGB")
        except Exception as exc:
            raise ValueError(f"{self.path}: unreadable image for camera {self.camera!r} ({exc})") from exc

    def encoded(self) -> tuple[bytes, str]:
        """(file bytes, MIME type): the file itself, or the array encoded as PNG."""
        if self.path is not None:
            mime = _MIME.get(self.path.suffix.lower())
            if mime is None:
                raise ValueError(f"{self.path}: unsupported image type {self.path.suffix!r}")
            return self.path.read_bytes(), mime
        buf = io.BytesIO()
        self.pil().save(buf, format="PNG")
        return buf.getvalue(), "image/png"

    def data_url(self) -> str:
        """A ``data:<mime>;base64,...`` URL (how OpenAI-compatible servers take inline images)."""
        data, mime = self.encoded()
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


@dataclass(frozen=True)
class VLMRequest:
    """One frame's question. ``json_schema``: the reply schema for constrained decoding (None: free text)."""

    request_id: str
    system: str
    user_text: str
    images: tuple[ImageInput, ...]
    json_schema: dict[str, Any] | None = None
    seed: int | None = None

    def messages(self, image_part: Callable[[ImageInput], dict[str, Any]]) -> list[dict[str, Any]]:
        """Chat messages: the system turn, then one user turn with each image preceded by its camera name,
        then the text. ``image_part`` makes a backend's image content item."""
        content: list[dict[str, Any]] = []
        for im in self.images:
            content.append({"type": "text", "text": f"{im.camera}:"})
            content.append(image_part(im))
        content.append({"type": "text", "text": self.user_text})
        return [
            {"role": "system", "content": [{"type": "text", "text": self.system}]},
            {"role": "user", "content": content},
        ]


@runtime_checkable
class VLMBackend(Protocol):
    """The one backend interface (``local``, ``openai``, ``vllm``)."""

    name: str

    @property
    def model_id(self) -> str: ...

    @property
    def model_revision(self) -> str: ...

    def generate(self, requests: Sequence[VLMRequest]) -> list[str | ReplyError]: ...

    def decoding_params(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def folder_fingerprint(model_dir: str | Path) -> str:
    """A cheap revision of a local model folder: sha256 prefix of its ``config.json`` text plus the names
    and sizes of its other files (a folder from the Hugging Face cache already carries its snapshot hash in
    its path, which is recorded as the model id)."""
    root = Path(model_dir)
    h = hashlib.sha256()
    cfg = root / "config.json"
    if cfg.is_file():
        h.update(cfg.read_bytes())
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "config.json" and not p.name.startswith("."):
            h.update(f"{p.relative_to(root)}:{p.stat().st_size}\n".encode())
    return "fp-" + h.hexdigest()[:16]
