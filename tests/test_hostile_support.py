"""Helpers of the hostile-input tests: a real scripted OpenAI-compatible HTTP server on 127.0.0.1, CLI
runners that report tracebacks, and data set surgery (rewrite a file, keep the manifest's sha256 right)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from typer.testing import CliRunner

from riskdistill.data import format as fmt

Behaviour = Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]


# ------------------------------------------------------------------------------------------ the server
def listed_ids(request: dict[str, Any]) -> list[int]:
    """The object ids a request lists (from the reply schema it sends as ``response_format``)."""
    schema = request["response_format"]["json_schema"]["schema"]
    return list(schema["properties"]["objects"]["items"]["properties"]["id"]["enum"])


def good_reply(ids: list[int], reason: str = "close to the ego path", pad: str = "") -> str:
    """A valid reply ranking ``ids`` in order (risks 0.9, 0.8, ...), plus ``pad`` after the JSON."""
    objs = [{"id": i, "risk": round(max(0.9 - 0.1 * k, 0.1), 2), "reason": reason} for k, i in enumerate(ids)]
    return json.dumps({"objects": objs, "summary": "scripted"}) + pad


def completion(content: str) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    ]}).encode()  # fmt: skip


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "application/json") -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def good(reason: str = "close to the ego path", pad: str = "") -> Behaviour:
    return lambda h, req: send(h, 200, completion(good_reply(listed_ids(req), reason, pad)))


def content(text: str) -> Behaviour:
    """A chat completion whose message is ``text`` (a malformed reply, say)."""
    return lambda h, req: send(h, 200, completion(text))


def raw(status: int, body: bytes, ctype: str) -> Behaviour:
    """Any body with any status (an HTML page, bytes that are not UTF-8, ...)."""
    return lambda h, req: send(h, status, body, ctype)


def trickle(interval_s: float) -> Behaviour:
    """A valid answer sent one byte every ``interval_s`` seconds (each read returns in time)."""

    def run(h: BaseHTTPRequestHandler, req: dict[str, Any]) -> None:
        body = completion(good_reply(listed_ids(req)))
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            for k in range(len(body)):
                h.wfile.write(body[k : k + 1])
                h.wfile.flush()
                time.sleep(interval_s)
        except OSError:  # the client gave up
            pass

    return run


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 (in a thread) speaking the chat-completions protocol: each request
    gets the next behaviour of ``script`` (default: :func:`good`), after ``delay_s``; every request's
    headers and JSON body are kept in ``requests``."""

    def __init__(self) -> None:
        self.script: deque[Behaviour] = deque()
        self.default: Behaviour = good()
        self.delay_s = 0.0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    act = outer.script.popleft() if outer.script else outer.default
                time.sleep(outer.delay_s)
                act(self, body)

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def teacher_config(url: str, **backend: Any) -> dict[str, Any]:
    """A VLM teacher config on ``url``: all cameras (every frame of the tiny data set then lists objects),
    one attempt, sequential requests, no retries."""
    b = {"type": "openai", "base_url": url, "model": "scripted", "max_retries": 0, "backoff_s": 0.01}
    return {"backend": {**b, "concurrency": 1, **backend}, "cameras": "all", "max_attempts": 1}


# ------------------------------------------------------------------------------------------ CLI
def cli(command: Callable[..., Any], name: str, *args: Any) -> tuple[int, str]:
    """Run a Typer command function as ``riskdistill <name> ...`` (CliRunner); returns (exit code, output).
    An exception escaping the command is reported in the output as a traceback would be."""
    app = typer.Typer()
    app.command(name)(command)
    app.command("other")(lambda: None)  # two commands: addressed by name, as in the main app
    res = CliRunner().invoke(app, [name, *map(str, args)], env={"COLUMNS": "500"})  # no wrapped paths
    out = res.output
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        out += f"\nTraceback (most recent call last): {type(res.exception).__name__}: {res.exception}"
    return res.exit_code, out


def flat(text: str) -> str:
    """Console output without rich's line wrapping."""
    return " ".join(text.split())


# ------------------------------------------------------------------------------------------ data surgery
def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def rehash(root: Path, rel: str) -> None:
    """Record the current sha256 of ``rel`` in the manifest (a writer that produced this file)."""
    m = json.loads((root / fmt.MANIFEST).read_text())
    m["files"][rel] = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    (root / fmt.MANIFEST).write_text(json.dumps(m, indent=2))


def set_frame_column(root: Path, row: int, column: str, value: Any) -> None:
    """Change one cell of frames.parquet (keeping the schema)."""
    t = pq.read_table(root / fmt.FRAMES)
    values = t.column(column).to_pylist()
    values[row] = value
    i = t.schema.get_field_index(column)
    t = t.set_column(i, t.schema.field(i), pa.array(values, type=t.schema.field(i).type))
    pq.write_table(t, root / fmt.FRAMES)


def snapshot(folder: Path, patterns: tuple[str, ...] = ("**/*",)) -> dict[str, bytes]:
    """Every file under ``folder`` matching ``patterns``, by relative path."""
    files = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}
