"""``openai``: any OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama, ``transformers serve``,
a hosted API), spoken to directly over HTTP (``transport.py``; no client library, no proxy).

- Images go inline as base64 ``data:`` URLs (recorded JPEGs are sent as they are, not re-encoded, after the
  teacher has decoded them once: a broken image is never sent).
- ``response_format="json_schema"`` sends the frame's reply schema as
  ``{"type": "json_schema", "json_schema": {"name": "risk_reply", "schema": ..., "strict": true}}`` (vLLM and
  SGLang then decode under the schema); ``"json_object"`` asks for any JSON object; ``"none"`` sends
  nothing (servers that reject the field). ``transformers serve`` ignores the field and decodes freely.
- ``timeout_s`` is a deadline per request: connecting, sending, waiting and reading the whole answer
  (a server trickling its answer cannot stretch it); answers larger than ``max_response_bytes`` are
  refused. Retries with exponential backoff (``backoff_s * 2**k``, at most ``backoff_max_s``, with
  jitter) on timeouts, refused connections, HTTP 429 and 5xx; other 4xx answers are not retried. A request
  that still fails comes back as ``ReplyError`` (``timeout``, ``connection``, ``http`` with the status and
  the server's body, ``protocol`` for an answer that is not a chat completion: a body that is not UTF-8
  or not JSON, e.g. an HTML page with status 200, kept in ``raw_text``).
- Circuit breaker: after ``max_consecutive_failures`` attempts in a row that could not reach the server
  or timed out (0: never), no further request is sent and ``generate`` raises
  :class:`~riskdistill.teacher.vlm.backends.base.BackendUnavailableError` (``fatal``): the labelling run
  stops with that message, keeping every frame already written; rerun to resume.
- At most ``concurrency`` requests in flight (a thread pool).
- The API key is read from the environment variable named by ``api_key_env``; it is never logged nor
  written into configs, error records or provenance (only the variable's name is).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import Field

from riskdistill.config import StrictConfig
from riskdistill.teacher.vlm.backends.base import (
    BackendUnavailableError,
    DecodingConfig,
    ImageInput,
    VLMRequest,
)
from riskdistill.teacher.vlm.backends.transport import HttpFailureError, post_json
from riskdistill.teacher.vlm.parse import ReplyError

UNREACHABLE_KINDS = frozenset({"connection", "timeout"})


class OpenAIBackendConfig(StrictConfig):
    type: Literal["openai"] = "openai"
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str  # the model name the server knows (vLLM: the served model name or path)
    revision: str = ""  # recorded revision (servers rarely report one)
    api_key_env: str | None = "OPENAI_API_KEY"  # name of the environment variable holding the key
    timeout_s: float = Field(default=120.0, gt=0.0)  # deadline per request (whole answer read)
    max_response_bytes: int = Field(default=8 << 20, ge=1024)
    max_consecutive_failures: int = Field(default=6, ge=0)  # circuit breaker; 0 = off
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
        self.config = config
        self.decoding = decoding
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        self._api_key = key or "EMPTY"  # local servers accept any key; some insist on a non-empty one
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._lock = threading.Lock()
        self._unreachable = 0  # attempts in a row that did not reach the server
        self._last_unreachable = ""
        self._open = False  # the circuit breaker tripped: nothing more is sent

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
        c = self.config
        payload = {**body, **c.extra_body}
        headers = {"Authorization": f"Bearer {self._api_key}"}
        try:
            ans = post_json(self._url, payload, headers, c.timeout_s, c.max_response_bytes)
        except HttpFailureError as f:
            if f.kind == "too_large":
                raise ReplyError("protocol", f.message, _text(f.partial), f.status) from None
            raise ReplyError(f.kind, f.message, "") from None
        text = _text(ans.body)
        if not 200 <= ans.status < 300:
            raise ReplyError("http", f"HTTP {ans.status} from {self._url}", text, ans.status)
        what = f"HTTP {ans.status} from {self._url} (content-type {ans.headers.get('content-type', '?')})"
        try:
            data = json.loads(ans.body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            msg = f"{what}: the body is not UTF-8 (byte {exc.start}); kept with \\x escapes"
            raise ReplyError("protocol", msg, text, ans.status) from None
        except (ValueError, RecursionError):
            msg = f"{what}: the body is not JSON; is it a chat-completions server (URLs usually end in /v1)?"
            raise ReplyError("protocol", msg, text, ans.status) from None
        content = _message_content(data)
        if content is None:
            raise ReplyError("protocol", f"{what}: JSON without choices[0].message.content", text, ans.status)
        return content

    def _note(self, err: ReplyError | None) -> None:
        """Count attempts in a row that did not reach the server; trip the breaker at the limit."""
        with self._lock:
            if err is None or err.kind not in UNREACHABLE_KINDS:
                self._unreachable = 0
                return
            self._unreachable += 1
            self._last_unreachable = err.message
            n = self.config.max_consecutive_failures
            if n and self._unreachable >= n:
                self._open = True

    def _with_retries(self, req: VLMRequest) -> str | ReplyError:
        try:
            body = self._body(req)
        except Exception as exc:  # unreadable image etc.
            return ReplyError("backend", f"cannot build the request: {type(exc).__name__}: {exc}", "")
        c = self.config
        err: ReplyError | None = None
        for k in range(c.max_retries + 1):
            if self._open:
                err = err or ReplyError("connection", f"not sent: {self._url} is unreachable", "")
                break
            try:
                reply = self._once(body)
                self._note(None)
                return reply
            except ReplyError as e:
                self._note(e)
                err = e
                err.attempts = k + 1
                if not _is_retryable(e) or k == c.max_retries or self._open:
                    break
                time.sleep(min(c.backoff_max_s, c.backoff_s * 2**k) * random.uniform(0.5, 1.0))
            except Exception as exc:
                return ReplyError("backend", f"{type(exc).__name__}: {exc}", "")
        assert err is not None
        if err.attempts > 1:
            err.message += f" (after {err.attempts} tries)"
        return err

    def generate(self, requests: Sequence[VLMRequest]) -> list[str | ReplyError]:
        """One reply (or ``ReplyError``) per request; raises :class:`BackendUnavailableError` once the
        circuit breaker has tripped (see the module docstring)."""
        self._raise_if_open()
        if len(requests) <= 1 or self.config.concurrency == 1:
            out = [self._with_retries(r) for r in requests]
        else:
            with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(requests))) as pool:
                out = list(pool.map(self._with_retries, requests))
        self._raise_if_open()
        return out

    def _raise_if_open(self) -> None:
        if self._open:
            n = self.config.max_consecutive_failures
            raise BackendUnavailableError(
                f"the VLM server {self.config.base_url} is not answering: {n} attempts in a row failed "
                f"(last: {self._last_unreachable}). Stopped; what was written is kept. Start the server (or "
                f"fix the URL) and rerun the same command to resume."
            )

    def decoding_params(self) -> dict[str, Any]:
        constrained_with = self.config.response_format if self.decoding.constrained else "none"
        return {"backend": self.name, **self.decoding.model_dump(), "constrained_with": constrained_with}

    def close(self) -> None:
        return None


def _text(body: bytes) -> str:
    """A body as text for error records: UTF-8, with undecodable bytes kept as ``\\xNN`` escapes."""
    return body.decode("utf-8", errors="backslashreplace")


def _message_content(data: Any) -> str | None:
    """``choices[0].message.content`` of a chat completion (text parts joined; ``None`` content -> ``""``),
    or None when the JSON is not shaped like one."""
    try:
        message = data["choices"][0]["message"]
        content = message.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        if all(isinstance(t, str) for t in parts):
            return "".join(parts)
    return None
