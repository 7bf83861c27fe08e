"""``vllm``: vLLM's offline ``LLM`` engine, for batch labelling on GPUs (optional).

vLLM is not a dependency of riskdistill (it needs a CUDA GPU and pins its own torch): install it in a
separate environment, ``pip install vllm`` (then ``pip install -e .`` of this repository), and use
``backend: {"type": "vllm", "model_dir": ...}``. This module imports without vLLM; building the backend
without it raises :class:`VLLMNotInstalledError` with these instructions.

All requests of a ``generate`` call go to ``LLM.chat`` at once (vLLM schedules them with continuous
batching); images go as ``data:`` URLs; constrained decoding uses vLLM's structured outputs
(``StructuredOutputsParams(json=schema)``, or ``GuidedDecodingParams`` on vLLM < 0.12) with the frame's reply
schema; each request carries its own seed, so sampled replies do not depend on batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from riskdistill.config import StrictConfig
from riskdistill.teacher.vlm.backends.base import (
    DecodingConfig,
    ImageInput,
    VLMRequest,
    folder_fingerprint,
)
from riskdistill.teacher.vlm.parse import ReplyError

INSTALL_HINT = (
    "the 'vllm' backend needs vLLM, which is not installed. On a Linux machine with a CUDA GPU: "
    "`pip install vllm` in a fresh environment, then `pip install -e .` of riskdistill into it "
    "(see docs/teachers.md). Without a GPU use the 'local' backend, or run `vllm serve` elsewhere and use "
    "the 'openai' backend."
)


class VLLMNotInstalledError(ImportError):
    """vLLM is needed for the ``vllm`` backend and is missing."""


class VLLMBackendConfig(StrictConfig):
    type: Literal["vllm"] = "vllm"
    model_dir: str  # local folder (or a model name vLLM can resolve from its own cache)
    model_id: str = ""
    revision: str = ""
    tensor_parallel_size: int = Field(default=1, ge=1)
    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    max_model_len: int = Field(default=16384, ge=256)
    max_images_per_prompt: int = Field(default=6, ge=1)
    dtype: str = "auto"
    enforce_eager: bool = False


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise VLLMNotInstalledError(INSTALL_HINT) from exc
    return vllm


class VLLMBackend:
    """Generate replies with vLLM's offline engine (see the module docstring)."""

    name = "vllm"

    def __init__(self, config: VLLMBackendConfig, decoding: DecodingConfig):
        self._vllm = _import_vllm()
        self.config = config
        self.decoding = decoding
        path = Path(config.model_dir)
        self._revision = config.revision or (folder_fingerprint(path) if path.is_dir() else "")
        self._llm: Any = None

    @property
    def model_id(self) -> str:
        return self.config.model_id or self.config.model_dir

    @property
    def model_revision(self) -> str:
        return self._revision

    def _engine(self) -> Any:
        if self._llm is None:
            c = self.config
            self._llm = self._vllm.LLM(
                model=c.model_dir,
                tensor_parallel_size=c.tensor_parallel_size,
                gpu_memory_utilization=c.gpu_memory_utilization,
                max_model_len=c.max_model_len,
                limit_mm_per_prompt={"image": c.max_images_per_prompt},
                dtype=c.dtype,
                seed=self.decoding.seed,
                enforce_eager=c.enforce_eager,
            )
        return self._llm

    def _sampling(self, req: VLMRequest) -> Any:
        from vllm import SamplingParams

        d = self.decoding
        kwargs: dict[str, Any] = {
            "max_tokens": d.max_new_tokens,
            "temperature": d.temperature,
            "top_p": d.top_p if d.do_sample else 1.0,
            "seed": req.seed if req.seed is not None else d.seed,
        }
        if d.constrained and req.json_schema is not None:
            try:
                from vllm.sampling_params import StructuredOutputsParams

                kwargs["structured_outputs"] = StructuredOutputsParams(json=req.json_schema)
            except ImportError:  # vLLM < 0.12
                from vllm.sampling_params import GuidedDecodingParams

                kwargs["guided_decoding"] = GuidedDecodingParams(json=req.json_schema)
        return SamplingParams(**kwargs)

    def generate(self, requests: Sequence[VLMRequest]) -> list[str | ReplyError]:
        if not requests:
            return []

        def image_part(im: ImageInput) -> dict[str, Any]:
            return {"type": "image_url", "image_url": {"url": im.data_url()}}

        try:
            llm = self._engine()
            outputs = llm.chat(
                [r.messages(image_part) for r in requests],
                sampling_params=[self._sampling(r) for r in requests],
                use_tqdm=False,
            )
        except Exception as exc:
            return [ReplyError("backend", f"vLLM failed: {type(exc).__name__}: {exc}", "") for _ in requests]
        return [o.outputs[0].text if o.outputs else "" for o in outputs]

    def decoding_params(self) -> dict[str, Any]:
        return {"backend": self.name, **self.decoding.model_dump(), "constrained_with": "vllm"}

    def close(self) -> None:
        self._llm = None
