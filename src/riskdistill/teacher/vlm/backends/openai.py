"""``openai``: any OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama, ``transformers serve``,
a hosted API) through the ``openai`` client.

- Images go inline as base64 ``data:`` URLs (recorded JPEGs are sent as they are, not re-encoded).
- ``response_format="json_schema"`` sends the frame's reply schema as
  ``{"type": "json_schema", "json_schema": {"name": "risk_reply", "schema": ..., "strict": true}}`` (vLLM and
  SGLang then decode under the schema); ``"json_object"`` asks for any JSON object; ``"none"`` sends
  nothing (servers that reject the field). ``transformers serve`` ignores the field and decodes freely.
- Timeouts (``timeout_s`` per request), retries with exponential backoff (``backoff_s * 2**k``, at most
  ``backoff_max_s``, with jitter) on timeouts, refused connections, HTTP 429 and 5xx; other 4xx answers are
  not retried. A request that still fails comes back as ``ReplyError`` (``timeout``, ``connection``,
  ``http`` with the status and the server's error text).
- At most ``concurrency`` requests in flight (a thread pool).
- The API key is read from the environment variable named by ``api_key_env``; it is never logged nor
  written into configs or provenance (only the variable's name is).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import Field

from riskdistill.config import StrictConfig
from riskdistill.teacher.vlm.backends.base import DecodingConfig, ImageInput, VLMRequest
from riskdistill.teacher.vlm.parse import ReplyError


class OpenAIBackendConfig(StrictConfig):
    type: Literal["openai"] = "openai"
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str  # the model name the server knows (vLLM: the served model name or path)
    revision: str = ""  # recorded revision (servers rarely report one)
    api_key_env: str | None = "OPENAI_API_KEY"  # name of the environment variable holding the key
    timeout_s: float = Field(default=120.0, gt=0.0)
    max_retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=1.0, ge=0.0)
    backoff_max_s: float = Field(default=30.0, ge=0.0)
    concurrency: int = Field(default=8, ge=1)
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    extra_body: dict[str, Any] = Field(default_factory=dict)  # server-specific fields, sent as they are


def _is_retryable(err: ReplyError) -> bool:
    return err.kind in ("timeout", "connection") or (
        err.kind == "http" and err.status is not None and (err.status == 429 or err.status >= 500)
    )


class OpenAIBackend:
    """Generate replies through an OpenAI-compatible server (see the module docstring)."""

    name = "openai"

    def __init__(self, config: OpenAIBackendConfig, decoding: DecodingConfig):
        import openai

        self.config = config
        self.decoding = decoding
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        # local servers accept any key; the client insists on a non-empty one
        self._client = openai.OpenAI(
            base_url=config.base_url, api_key=key or "EMPTY", timeout=config.timeout_s, max_retries=0
        )
        self._openai = openai

    @property
    def model_id(self) -> str:
        return self.config.model

    @property
    def model_revision(self) -> str:
        return self.config.revision

    def _body(self, req: VLMRequest) -> dict[str, Any]:
        d = self.decoding

        def image_part(im: ImageInput) -> dict[str, Any]:
            return {"type": "image_url", "image_url": {"url": im.data_url()}}

        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": req.messages(image_part),
            "max_tokens": d.max_new_tokens,
            "temperature": d.temperature,
            "seed": req.seed if req.seed is not None else d.seed,
        }
        if d.do_sample:
            body["top_p"] = d.top_p
        if d.constrained and req.json_schema is not None and self.config.response_format == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "risk_reply", "schema": req.json_schema, "strict": True},
            }
        elif d.constrained and self.config.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def _once(self, body: dict[str, Any]) -> str:
        o = self._openai
        try:
            resp = self._client.chat.completions.create(
                **body, extra_body=dict(self.config.extra_body) or None
            )
        except o.APITimeoutError as exc:
            raise ReplyError("timeout", f"no answer within {self.config.timeout_s} s ({exc})", "") from None
        except o.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise ReplyError(
                "connection", f"cannot reach {self.config.base_url} ({type(cause).__name__}: {cause})", ""
            ) from None
        except o.APIStatusError as exc:
            text = exc.response.text if exc.response is not None else str(exc)
            raise ReplyError(
                "http", f"HTTP {exc.status_code} from {self.config.base_url}", text[:4000], exc.status_code
            ) from None
        if not resp.choices:
            raise ReplyError("http", "the server answered without choices", resp.model_dump_json()[:4000])
        return resp.choices[0].message.content or ""

    def _with_retries(self, req: VLMRequest) -> str | ReplyError:
        try:
            body = self._body(req)
        except Exception as exc:  # unreadable image etc.
            return ReplyError("backend", f"cannot build the request: {type(exc).__name__}: {exc}", "")
        c = self.config
        err: ReplyError | None = None
        for k in range(c.max_retries + 1):
            try:
                return self._once(body)
            except ReplyError as e:
                err = e
                err.attempts = k + 1
                if not _is_retryable(e) or k == c.max_retries:
                    break
                time.sleep(min(c.backoff_max_s, c.backoff_s * 2**k) * random.uniform(0.5, 1.0))
            except Exception as exc:
                return ReplyError("backend", f"{type(exc).__name__}: {exc}", "")
        assert err is not None
        if err.attempts > 1:
            err.message += f" (after {err.attempts} tries)"
        return err

    def generate(self, requests: Sequence[VLMRequest]) -> list[str | ReplyError]:
        if len(requests) <= 1 or self.config.concurrency == 1:
            return [self._with_retries(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(requests))) as pool:
            return list(pool.map(self._with_retries, requests))

    def decoding_params(self) -> dict[str, Any]:
        constrained_with = self.config.response_format if self.decoding.constrained else "none"
        return {"backend": self.name, **self.decoding.model_dump(), "constrained_with": constrained_with}

    def close(self) -> None:
        self._client.close()
