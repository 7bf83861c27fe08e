"""VLM teacher through the OpenAI-compatible backend, against a real ``transformers serve`` process on
127.0.0.1 serving the tiny random Qwen2.5-VL; transport failures (HTTP 500, refused connection, timeout)
against the same real server and a port where nothing listens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("openai")
pytest.importorskip("fastapi")

from riskdistill.data import RecordedDataset  # noqa: E402
from riskdistill.teacher.grounding import ground_truth_objects  # noqa: E402
from riskdistill.teacher.schema import FrameLabel  # noqa: E402
from riskdistill.teacher.tiny_vlm import build_tiny_vlm  # noqa: E402
from riskdistill.teacher.vlm import ReplyError, VLMTeacher  # noqa: E402

TRANSPORT = ("http", "timeout", "connection", "backend")
SERVER_START_S = 90.0
torch.set_num_threads(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vlm(tmp_path_factory.getbasetemp() / "tiny_vlm", seed=0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """``transformers serve`` on a free 127.0.0.1 port, offline, CPU; yields its base URL."""
    home = tmp_path_factory.mktemp("hf_home")
    (home / "hub").mkdir()  # /v1/models answers 500 unless the cache folder exists
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    port = free_port()
    log = open(home / "serve.log", "w")  # noqa: SIM115 (closed below)
    argv = [sys.executable, "-m", "transformers.cli.transformers", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--device", "cpu", "--log-level", "warning"]
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"transformers serve exited ({proc.returncode}): {(home / 'serve.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start in {SERVER_START_S} s")
            time.sleep(0.5)
        yield url + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def frames(tiny_dataset: Path):
    ds = RecordedDataset(tiny_dataset)
    out = [
        f
        for f in (ds[i] for i in range(len(ds)))
        if any(o.camera == "CAM_FRONT" for o in ground_truth_objects(f))
    ]
    assert len(out) >= 2
    return out[:2]


def openai_teacher(model: str, base_url: str, **backend) -> VLMTeacher:
    return VLMTeacher(
        {
            "backend": {
                "type": "openai",
                "base_url": base_url,
                "model": model,
                "max_retries": 1,
                "backoff_s": 0.05,
            }
            | backend,
            "max_objects": 3,
            "decoding": {"max_new_tokens": 24},
            "max_attempts": 1,
        }
    )


@pytest.mark.slow
def test_served_model_reply_is_parsed_and_equals_the_local_model(server, tiny_vlm_dir, frames):
    teacher = openai_teacher(str(tiny_vlm_dir), server)
    out = teacher.label_many(frames)
    assert len(out) == len(frames)
    # transformers serve ignores response_format (it warns and decodes freely): a random model then writes
    # random text, which the pipeline must record as a failure with the raw text, or (by chance) a label
    replies = []
    for r in out:
        if isinstance(r, ReplyError):
            assert r.kind not in TRANSPORT, f"the server did not answer: {r}"
            assert r.raw_text.strip() or r.kind == "empty"
            replies.append(r.raw_text)
        else:
            assert isinstance(r, FrameLabel) and r.provenance.decoding["backend"] == "openai"
            replies.append(r.provenance.raw_response)
    # the server ran the same model on the same prompt and images: greedy text equals the local backend's
    local = VLMTeacher(
        {
            "backend": {"type": "local", "model_dir": str(tiny_vlm_dir), "batch_size": 1},
            "max_objects": 3,
            "decoding": {"max_new_tokens": 24, "constrained": False},
        }
    )
    local_replies = local.backend.generate([local.prepare(f).request for f in frames])
    assert replies == local_replies


@pytest.mark.slow
def test_http_500_is_retried_then_recorded(server, frames):
    teacher = openai_teacher("/no/such/model", server)  # the real server fails to load it: HTTP 500
    t0 = time.monotonic()
    out = teacher.label_many(frames[:1])
    err = out[0]
    assert isinstance(err, ReplyError) and err.kind == "http" and err.status == 500
    assert "after 2 tries" in err.message and err.raw_text  # one retry with backoff, server text kept
    assert time.monotonic() - t0 < 30


def test_connection_refused_is_recorded():
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        teacher = openai_teacher("tiny", url)
        err = teacher.backend.generate([_request()])[0]
    assert isinstance(err, ReplyError) and err.kind == "connection" and err.attempts == 2
    assert "refused" in err.message.lower()


@pytest.mark.slow
def test_timeout_is_recorded(server, tiny_vlm_dir, frames):
    teacher = openai_teacher(str(tiny_vlm_dir), server, timeout_s=0.001, max_retries=0)
    err = teacher.label_many(frames[:1])[0]
    assert isinstance(err, ReplyError) and err.kind == "timeout"


def test_api_key_comes_from_the_environment_and_is_never_recorded(monkeypatch):
    monkeypatch.setenv("RISKDISTILL_TEST_KEY", "sk-secret-123")
    teacher = VLMTeacher(
        {
            "backend": {
                "type": "openai",
                "model": "m",
                "api_key_env": "RISKDISTILL_TEST_KEY",
                "base_url": "http://x/v1",
            }
        }
    )
    assert teacher.backend._api_key == "sk-secret-123"
    dumped = teacher.config.model_dump_json()
    assert "sk-secret-123" not in dumped and "RISKDISTILL_TEST_KEY" in dumped
    label_like = teacher._provenance("raw", 1, [], teacher._decoding_params())
    assert "sk-secret-123" not in label_like.model_dump_json()


def _request():
    import numpy as np

    from riskdistill.teacher.vlm import ImageInput, VLMRequest

    img = ImageInput("CAM_FRONT", array=np.zeros((8, 8, 3), dtype=np.uint8))
    return VLMRequest("f0", "sys", "user", (img,), None, 0)
