"""VLM backends behind one interface, ``generate(requests) -> list[str | ReplyError]``
(:class:`~riskdistill.teacher.vlm.backends.base.VLMBackend`).

| name | file | what |
|---|---|---|
| ``local`` | ``local.py`` | a transformers image-text-to-text model from a folder, xgrammar decoding |
| ``openai`` | ``openai.py`` | any OpenAI-compatible server (vLLM, SGLang, Ollama, ``transformers serve``) |
| ``vllm`` | ``vllm.py`` | vLLM's offline engine on GPUs (optional import) |

A new backend: copy ``openai.py`` to ``<name>.py`` with a ``<Name>BackendConfig``
(``type: Literal["<name>"]``)
and a class with ``name``, ``model_id``, ``model_revision``, ``generate``, ``decoding_params`` and ``close``;
register both below with ``BACKENDS.add("<name>", BackendPlugin(<Name>BackendConfig, <Name>Backend))``. The
registry-wide test builds every registered backend's config and checks its contract (see
``docs/howto.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, SerializeAsAny

from riskdistill.config import StrictConfig
from riskdistill.registry import Registry
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


@dataclass(frozen=True)
class BackendPlugin:
    """A registered backend: its config class (``type`` field = the registry name) and its class."""

    config_cls: type[StrictConfig]
    backend_cls: type


BACKENDS: Registry[BackendPlugin] = Registry("VLM backend")
BACKENDS.add("local", BackendPlugin(LocalBackendConfig, LocalBackend))
BACKENDS.add("openai", BackendPlugin(OpenAIBackendConfig, OpenAIBackend))
BACKENDS.add("vllm", BackendPlugin(VLLMBackendConfig, VLLMBackend))


def available_backends() -> list[str]:
    return BACKENDS.names()


def backend_config(config: Any) -> StrictConfig:
    """The backend config of a dict with a ``type`` key (or a config object, returned as is); an unknown
    type lists the registered backends."""
    if isinstance(config, dict):
        plugin = BACKENDS.get(config.get("type"))
        return plugin.config_cls.from_dict(config, source="backend config")
    BACKENDS.get(getattr(config, "type", None))
    return config


def build_backend(config: Any, decoding: DecodingConfig | None = None) -> VLMBackend:
    """The backend for a backend config (or a dict with a ``type`` key)."""
    config = backend_config(config)
    return BACKENDS.get(config.type).backend_cls(config, decoding or DecodingConfig())


#: A backend config of any registered backend (validated through the registry by its ``type``).
BackendConfig = Annotated[SerializeAsAny[StrictConfig], BeforeValidator(backend_config)]


__all__ = [
    "BACKENDS",
    "BackendConfig",
    "BackendPlugin",
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
    "backend_config",
    "build_backend",
    "folder_fingerprint",
]
