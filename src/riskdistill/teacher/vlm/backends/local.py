"""``local``: a transformers image-text-to-text model from a local folder, with JSON-schema constrained
decoding through xgrammar.

Any model ``AutoModelForImageTextToText`` can load works (Qwen2.5-VL first); the folder must hold the model,
its processor and a chat template (``save_pretrained`` output or a Hugging Face snapshot folder). Nothing is
downloaded (``local_files_only=True``). Requests are padded on the left and generated in batches of
``batch_size``; with ``constrained`` decoding each request's reply schema is compiled by
``xgrammar.GrammarCompiler`` (cached by schema) and applied by xgrammar's logits processor, so even a random
model writes JSON that matches the schema.

Sampled decoding seeds torch with the first request's seed of each batch: the same batches give the same
replies; use ``batch_size=1`` for per-frame reproducibility independent of batching.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
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


class LocalBackendConfig(StrictConfig):
    type: Literal["local"] = "local"
    model_dir: str  # a folder with config.json, weights, processor and chat template
    model_id: str = ""  # name recorded in the provenance (default: the folder path)
    revision: str = ""  # recorded revision (default: a fingerprint of the folder)
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(default=4, ge=1)
    attn_implementation: str | None = None
    grammar_cache_size: int = Field(default=256, ge=1)


@lru_cache(maxsize=2)
def _load(model_dir: str, device: str, dtype_name: str, attn_implementation: str | None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dtype = "auto" if dtype_name == "auto" else getattr(torch, dtype_name)
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(model_dir, **kwargs).to(device).eval()
    tok = getattr(processor, "tokenizer", processor)
    tok.padding_side = "left"
    if getattr(processor, "chat_template", None) is None and tok.chat_template is None:
        raise ValueError(f"{model_dir}: the processor has no chat template (chat_template.jinja)")
    return processor, model


def _pil_part(im: ImageInput) -> dict[str, Any]:
    return {"type": "image", "image": im.pil()}


class LocalBackend:
    """Generate replies with a local transformers VLM (see the module docstring)."""

    name = "local"

    def __init__(self, config: LocalBackendConfig, decoding: DecodingConfig):
        self.config = config
        self.decoding = decoding
        self._dir = Path(config.model_dir)
        if not (self._dir / "config.json").is_file():
            raise FileNotFoundError(
                f"{self._dir}: not a model folder (no config.json); the local backend needs a folder "
                f"written by save_pretrained or a downloaded snapshot"
            )
        self._revision = config.revision or folder_fingerprint(self._dir)
        self._model: Any = None
        self._processor: Any = None
        self._compiler: Any = None
        self._grammars: OrderedDict[str, Any] = OrderedDict()

    @property
    def model_id(self) -> str:
        return self.config.model_id or str(self._dir)

    @property
    def model_revision(self) -> str:
        return self._revision

    # ------------------------------------------------------------------------------------------ loading
    def load(self) -> None:
        """Load the processor and model (done on the first ``generate``; shared by the backends of one
        process that use the same folder, device, dtype and attention)."""
        if self._model is not None:
            return
        c = self.config
        self._processor, self._model = _load(str(self._dir), c.device, c.dtype, c.attn_implementation)

    def _grammar(self, schema: dict[str, Any] | None) -> Any:
        import xgrammar as xgr

        if self._compiler is None:
            tok = getattr(self._processor, "tokenizer", self._processor)
            vocab = self._model.get_output_embeddings().weight.shape[0]
            info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab)
            self._compiler = xgr.GrammarCompiler(info)
        key = json.dumps(schema)  # insertion order: the order of the properties in the reply
        if key in self._grammars:
            self._grammars.move_to_end(key)
            return self._grammars[key]
        if schema is None:
            g = self._compiler.compile_builtin_json_grammar()
        else:  # no free whitespace: a random (or rambling) model cannot fill the token budget with blanks
            g = self._compiler.compile_json_schema(key, any_whitespace=False)
        self._grammars[key] = g
        if len(self._grammars) > self.config.grammar_cache_size:
            self._grammars.popitem(last=False)
        return g

    # ------------------------------------------------------------------------------------------ generate
    def generate(self, requests: Sequence[VLMRequest]) -> list[str | ReplyError]:
        out: list[str | ReplyError | None] = [None] * len(requests)
        ready: list[tuple[int, VLMRequest, list[dict[str, Any]]]] = []
        for k, req in enumerate(requests):  # images first: an unreadable one fails its request only
            try:
                ready.append((k, req, req.messages(_pil_part)))
            except Exception as exc:
                out[k] = ReplyError("backend", f"cannot read the images: {type(exc).__name__}: {exc}", "")
        bs = self.config.batch_size
        for i in range(0, len(ready), bs):
            chunk = ready[i : i + bs]
            try:
                texts: list[str | ReplyError] = list(
                    self._generate_batch([r for _, r, _ in chunk], [m for *_, m in chunk])
                )
            except Exception as exc:  # a failing batch is recorded per request, the run goes on
                texts = [
                    ReplyError("backend", f"local model failed: {type(exc).__name__}: {exc}", "")
                    for _ in chunk
                ]
            for (k, _, _), text in zip(chunk, texts, strict=True):
                out[k] = text
        return [o if o is not None else ReplyError("backend", "no reply", "") for o in out]

    def _generate_batch(
        self, requests: list[VLMRequest], conversations: list[list[dict[str, Any]]]
    ) -> list[str]:
        import torch

        self.load()
        d = self.decoding
        inputs = self._processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        ).to(self.config.device)
        kwargs: dict[str, Any] = {"max_new_tokens": d.max_new_tokens, "do_sample": d.do_sample}
        if d.do_sample:
            kwargs.update(temperature=d.temperature, top_p=d.top_p)
            seed = requests[0].seed if requests[0].seed is not None else d.seed
            torch.manual_seed(seed)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if d.constrained:
            from xgrammar.contrib.hf import LogitsProcessor

            # a request without a schema still gets JSON (xgrammar's built-in JSON grammar)
            kwargs["logits_processor"] = [LogitsProcessor([self._grammar(r.json_schema) for r in requests])]
        with torch.inference_mode():
            ids = self._model.generate(**inputs, **kwargs)
        new = ids[:, inputs["input_ids"].shape[1] :]
        return list(self._processor.batch_decode(new, skip_special_tokens=True))

    def decoding_params(self) -> dict[str, Any]:
        return {"backend": self.name, **self.decoding.model_dump(), "constrained_with": "xgrammar"}

    def close(self) -> None:
        self._model = None
        self._processor = None
        self._compiler = None
        self._grammars.clear()
