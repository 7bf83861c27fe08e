"""VLM backends behind one interface, ``generate(requests) -> list[str | ReplyError]``
(:class:`~riskdistill.teacher.vlm.backends.base.VLMBackend`).

| name | file | what |
|---|---|---|
| ``local`` | ``local.py`` | a transformers image-text-to-text model from a folder, xgrammar decoding |
| ``openai`` | ``openai.py`` | any OpenAI-compatible server (vLLM, SGLang, Ollama, ``transformers serve``) |
| ``vllm`` | ``vllm.py`` | vLLM's offline engine on GPUs (optional import) |

A new backend: a ``<name>.py`` file with a ``<Name>BackendConfig`` (``type: Literal["<name>"]``) and a class
with ``name``, ``model_id``, ``model_revision``, ``generate``, ``decoding_params`` and ``close``; add both to
``BACKENDS`` and ``BackendConfig`` below (see ``docs/teachers.md``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from riskdistill.teacher.vlm.backends.base import (
    DecodingConfig,
    ImageInput,
    VLMBackend,
    VLMRequest,
    folder_fingerprint,
)
from riskdistill.teacher.vlm.backends.local import LocalBackend, LocalBackendConfig
from riskdistill.teacher.vlm.backends.openai import OpenAIBackend, OpenAIBackendConfig
from riskdistill.teacher.vlm.backends.vllm import VLLMBackend, VLLMBackendConfig, VLLMNotInstalledError

BackendConfig = Annotated[
    LocalBackendConfig | OpenAIBackendConfig | VLLMBackendConfig, Field(discriminator="type")
]

BACKENDS: dict[str, tuple[type, type]] = {
    "local": (LocalBackendConfig, LocalBackend),
    "openai": (OpenAIBackendConfig, OpenAIBackend),
    "vllm": (VLLMBackendConfig, VLLMBackend),
}


def available_backends() -> list[str]:
    return sorted(BACKENDS)


def build_backend(config: Any, decoding: DecodingConfig | None = None) -> VLMBackend:
    """The backend for a backend config (or a dict with a ``type`` key)."""
    if isinstance(config, dict):
        kind = config.get("type")
        if kind not in BACKENDS:
            raise ValueError(f"unknown VLM backend {kind!r}; available: {available_backends()}")
        config = BACKENDS[kind][0].from_dict(config, source="backend config")
    kind = getattr(config, "type", None)
    if kind not in BACKENDS:
        raise ValueError(f"unknown VLM backend {kind!r}; available: {available_backends()}")
    return BACKENDS[kind][1](config, decoding or DecodingConfig())


__all__ = [
    "BACKENDS",
    "BackendConfig",
    "DecodingConfig",
    "ImageInput",
    "LocalBackend",
    "LocalBackendConfig",
    "OpenAIBackend",
    "OpenAIBackendConfig",
    "VLLMBackend",
    "VLLMBackendConfig",
    "VLLMNotInstalledError",
    "VLMBackend",
    "VLMRequest",
    "available_backends",
    "build_backend",
    "folder_fingerprint",
]
