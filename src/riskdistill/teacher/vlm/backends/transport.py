"""A small HTTP/1.1 JSON client with a hard per-request deadline (standard library only), used by the
``openai`` backend.

    answer = post_json("http://127.0.0.1:8000/v1/chat/completions", body, headers, timeout_s=120,
                       max_bytes=8 << 20)        # HttpAnswer(status, headers, body bytes) or HttpFailureError

Why not a general HTTP client: their timeouts bound each socket operation, so a server that trickles its
answer (a byte every second) keeps one request alive for as long as it likes. Here a watchdog timer shuts
the socket down when ``timeout_s`` has passed since the request started, whatever it is doing then
(connecting, sending, waiting for the headers, reading the body), so no request outlives its deadline by
more than the time the operating system needs to wake the blocked read. The body is read up to
``max_bytes``. One connection per request (closed afterwards); no proxies, no compression
(``Accept-Encoding: identity``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

FailureKind = Literal["timeout", "connection", "protocol", "too_large"]


@dataclass(frozen=True)
class HttpAnswer:
    """A complete answer: the status, the headers (lower-case names) and the body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes


class HttpFailureError(Exception):
    """No complete answer. ``kind``: ``timeout`` (the deadline passed), ``connection`` (refused, unknown
    host, reset, closed without an answer), ``protocol`` (the peer does not speak HTTP) or ``too_large``
    (the body passed ``max_bytes``; ``partial`` holds its first bytes, ``status`` the answer's status)."""

    def __init__(self, kind: FailureKind, message: str, partial: bytes = b"", status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.partial = partial
        self.status = status


def post_json(
    url: str, payload: dict[str, Any], headers: dict[str, str], timeout_s: float, max_bytes: int
) -> HttpAnswer:
    """POST ``payload`` as JSON to ``url`` and read the whole answer within ``timeout_s`` seconds (see the
    module docstring); raises :class:`HttpFailureError`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpFailureError("connection", f"{url!r} is not an http:// or https:// URL")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    if https:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout_s)
    data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    expired = threading.Event()
    sockets: list[socket.socket] = []  # the connection's socket (http.client drops its own reference early)

    def expire() -> None:
        expired.set()
        for sock in sockets:
            with contextlib.suppress(OSError):  # wakes a blocked read or write in the request's thread
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    phase = "connect"
    try:
        conn.connect()
        sockets.append(conn.sock)
        if expired.is_set():
            raise TimeoutError
        phase = "send"
        conn.request(
            "POST",
            target,
            body=data,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Accept-Encoding": "identity",
                **headers,
            },
        )
        phase = "answer"
        resp = conn.getresponse()
        chunks: list[bytes] = []
        total = 0
        while chunk := resp.read1(1 << 16):  # what has arrived, at most 64 KiB
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise HttpFailureError(
                    "too_large",
                    f"the answer from {url} is larger than {max_bytes} bytes (max_response_bytes)",
                    b"".join(chunks),
                    resp.status,
                )
        if expired.is_set():  # a shut-down socket can look like the end of a body without a length
            raise TimeoutError
        return HttpAnswer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, b"".join(chunks))
    except HttpFailureError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _failure(exc, url, timeout_s, phase, expired.is_set()) from None
    finally:
        timer.cancel()
        conn.close()


def _failure(exc: BaseException, url: str, timeout_s: float, phase: str, expired: bool) -> HttpFailureError:
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if expired or isinstance(exc, TimeoutError):
        return HttpFailureError(
            "timeout", f"no complete answer from {url} within {timeout_s} s (per-request deadline; {phase})"
        )
    if isinstance(exc, http.client.IncompleteRead):
        return HttpFailureError(
            "connection", f"{url} closed the connection in the middle of its answer ({what})"
        )
    if isinstance(exc, (ConnectionError, socket.gaierror)) or phase == "connect":
        return HttpFailureError("connection", f"cannot reach {url} ({what})")
    if isinstance(exc, http.client.HTTPException):
        return HttpFailureError("protocol", f"{url} does not answer in HTTP ({what})")
    return HttpFailureError("connection", f"the connection to {url} failed ({what})")
