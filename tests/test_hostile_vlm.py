"""Hostile VLM replies and servers, against a real scripted HTTP server on 127.0.0.1 (the ``openai``
backend): every bad reply or server gets a clear, recorded outcome for its frame only, nothing already
written changes, and a dead server stops the run with a clear message."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from riskdistill.cli.label import label as label_command
from riskdistill.data.storage import RecordedDataset
from riskdistill.geometry import BevGrid
from riskdistill.teacher.runner import error_path, label_dataset, load_record, record_path
from riskdistill.teacher.vlm import ParseConfig, ReplyError, VLMTeacher, parse_reply
from riskdistill.teacher.vlm.parse import MAX_JSON_DEPTH, MAX_RAW_CHARS
from test_hostile_support import (
    ScriptedServer,
    cli,
    content,
    flat,
    good,
    raw,
    snapshot,
    teacher_config,
    trickle,
)

GRID = BevGrid.preset("tiny")
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def asked(tiny_dataset: Path) -> list[str]:
    """Ids of the first 16 frames: each lists objects, so each reaches the server (in this order)."""
    ds = RecordedDataset(tiny_dataset)
    t = VLMTeacher(teacher_config("http://127.0.0.1:9/v1"))
    ids = [ds[i].frame_id for i in range(16)]
    assert all(t.prepare(ds[i]).objects for i in range(16))
    return ids


def _frames(tiny_dataset: Path, ids: list[str]):
    ds = RecordedDataset(tiny_dataset)
    return [ds.frame(ds.index_of(f)) for f in ids]


def dead_url() -> tuple[socket.socket, str]:
    """A port that is bound but never listens: every connection is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, f"http://127.0.0.1:{s.getsockname()[1]}/v1"


# ------------------------------------------------------------------------------------------ replies
def test_deeply_nested_reply_fails_only_its_own_frame_and_keeps_its_text(
    tiny_dataset, asked, server, tmp_path
):
    nested = '{"objects": ' + "[" * 200_000 + "]" * 200_000 + "}"
    server.script.extend([good(), good(), content(nested)])  # the third frame asked gets it
    out = tmp_path / "vlm"
    res = label_dataset(
        tiny_dataset, out, VLMTeacher(teacher_config(server.url)), GRID, batch_size=8, limit=8,
        show_progress=False,
    )  # fmt: skip
    assert res.errors == {"syntax": 1} and res.labelled == 7, res
    err = json.loads(error_path(out, asked[2]).read_text())
    assert err["message"] == f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels"
    assert err["raw_text"] == nested[:MAX_RAW_CHARS] and err["raw_chars"] == len(nested)
    assert len(server.requests) == 8  # one batch, every frame asked once
    # without repair the reply goes straight to json.loads: its RecursionError is a syntax error too
    with pytest.raises(ReplyError, match="nested too deeply") as e:
        parse_reply("[" * 200_000 + "]" * 200_000, [1], ParseConfig(repair=False))
    assert e.value.kind == "syntax" and e.value.raw_chars == 400_000


def test_empty_objects_list_is_refused_not_a_risk_zero_label(tiny_dataset, asked, server, tmp_path):
    server.script.append(content('{"objects": [], "summary": "all clear"}'))
    out = tmp_path / "vlm"
    teacher = VLMTeacher(teacher_config(server.url))
    res = label_dataset(tiny_dataset, out, teacher, GRID, limit=4, show_progress=False)
    assert res.errors == {"schema": 1}
    err = json.loads(error_path(out, asked[0]).read_text())
    assert "'objects' is empty" in err["message"] and "minItems 1" in err["message"]
    assert err["raw_text"] == '{"objects": [], "summary": "all clear"}'
    assert load_record(out, asked[0]) is None  # no label written for it
    # a rerun asks again and repairs it
    res = label_dataset(tiny_dataset, out, teacher, GRID, limit=4, show_progress=False)
    assert res.labelled == 1 and res.n_errors == 0 and not error_path(out, asked[0]).exists()


def test_reasons_are_cut_at_the_configured_limit_and_invisible_characters_removed(
    tiny_dataset, asked, server
):
    server.script.extend([good(reason="A" * 150), good(reason="safe\u202eevil\u2066 \u200bzone\ufeff")])
    cfg = {**teacher_config(server.url), "reason_max_chars": 40}
    first, second = VLMTeacher(cfg).label_many(_frames(tiny_dataset, asked[:2]))
    reasons = [o.reason for o in first.objects]
    assert reasons and all(len(r) == 40 and r.endswith("…") for r in reasons)
    assert "reason_cut" in first.provenance.decoding["repairs"]
    assert {o.reason for o in second.objects} == {"safeevil zone"}
    assert "format_chars" in second.provenance.decoding["repairs"]
    # the schema sent with the request announced the same limit
    item = server.requests[0]["body"]["response_format"]["json_schema"]["schema"]["properties"]["objects"]
    assert item["items"]["properties"]["reason"]["maxLength"] == 40


def test_raw_replies_are_capped_with_the_cut_recorded(tiny_dataset, asked, server, tmp_path):
    pad = "\n" + " " * 2_000_000 + "thanks"  # a valid reply followed by 2 MB of padding
    junk = "x" * 5_000_000  # 5 MB that is no JSON at all
    server.script.extend([good(pad=pad), content(junk)])
    out = tmp_path / "vlm"
    res = label_dataset(
        tiny_dataset, out, VLMTeacher(teacher_config(server.url)), GRID, limit=4, show_progress=False
    )
    assert res.labelled == 3 and res.errors == {"no_json": 1}
    rec = load_record(out, asked[0])
    full = len(json.loads(server_reply(server, 0))["choices"][0]["message"]["content"])
    assert (
        len(rec.provenance.raw_response) == MAX_RAW_CHARS
        and rec.provenance.decoding["raw_response_chars"] == full
    )
    assert record_path(out, asked[0]).stat().st_size < 4 * MAX_RAW_CHARS
    err = json.loads(error_path(out, asked[1]).read_text())
    assert len(err["raw_text"]) == MAX_RAW_CHARS and err["raw_chars"] == 5_000_000
    assert error_path(out, asked[1]).stat().st_size < 4 * MAX_RAW_CHARS


def server_reply(server: ScriptedServer, k: int) -> str:
    """The chat completion the default behaviour gave to request ``k`` (recomputed from its request)."""
    from test_hostile_support import completion, good_reply, listed_ids

    pad = "\n" + " " * 2_000_000 + "thanks"
    return completion(good_reply(listed_ids(server.requests[k]["body"]), pad=pad)).decode()


def test_an_answer_larger_than_the_limit_is_refused(tiny_dataset, asked, server):
    server.script.append(good(pad=" " * 2_000_000))
    cfg = teacher_config(server.url, max_response_bytes=1 << 20)
    err = VLMTeacher(cfg).label_many(_frames(tiny_dataset, asked[:1]))[0]
    assert (
        isinstance(err, ReplyError) and err.kind == "protocol" and "larger than 1048576 bytes" in err.message
    )
    assert err.status == 200 and err.raw_text.startswith('{"id"') and len(err.raw_text) == MAX_RAW_CHARS


# ------------------------------------------------------------------------------------------ server answers
@pytest.mark.parametrize(
    ("behaviour", "kind", "message", "kept"),
    [
        (raw(200, b'\xff\xfe{"choices": []}', "application/json"), "protocol",
         "the body is not UTF-8 (byte 0)",
         "\\xff\\xfe"),
        (raw(200, b"<html><body>Please log in</body></html>", "text/html"), "protocol",
         "(content-type text/html): the body is not JSON", "Please log in"),
        (raw(200, b'{"choices": []}', "application/json"), "protocol",
         "JSON without choices[0].message.content",
         '{"choices": []}'),
        (raw(500, b"model crashed: CUDA error", "text/plain"), "http", "HTTP 500", "CUDA error"),
    ],
)  # fmt: skip
def test_server_answers_that_are_not_chat_completions_are_recorded_with_their_body(
    tiny_dataset, asked, server, behaviour, kind, message, kept
):
    server.script.append(behaviour)
    err = VLMTeacher(teacher_config(server.url)).label_many(_frames(tiny_dataset, asked[:1]))[0]
    assert isinstance(err, ReplyError) and err.kind == kind and message in err.message, err
    assert kept in err.raw_text


def test_the_timeout_is_a_deadline_for_the_whole_request(tiny_dataset, asked, server):
    server.script.append(trickle(0.05))  # each byte in time for a per-read timeout; the whole takes ~20 s
    teacher = VLMTeacher(teacher_config(server.url, timeout_s=1.0))
    t0 = time.monotonic()
    err = teacher.label_many(_frames(tiny_dataset, asked[:1]))[0]
    elapsed = time.monotonic() - t0
    assert isinstance(err, ReplyError) and err.kind == "timeout" and "per-request deadline" in err.message
    assert elapsed < 5.0, elapsed  # the deadline (1 s) plus start-up, never the trickle's ~20 s


def test_broken_images_are_never_sent_and_name_the_file(tiny_dataset, asked, server, tmp_path):
    import shutil

    data = shutil.copytree(tiny_dataset, tmp_path / "data")
    ds = RecordedDataset(data)
    cut, empty = (ds.frame(ds.index_of(f)) for f in asked[:2])
    jpg = cut.image_file("CAM_FRONT")
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    empty.image_file("CAM_FRONT").write_bytes(b"")
    out = tmp_path / "vlm"
    res = label_dataset(
        data, out, VLMTeacher(teacher_config(server.url)), GRID, limit=16, show_progress=False
    )
    assert res.errors == {"input": 2} and res.labelled == 14
    e1, e2 = (json.loads(error_path(out, f).read_text()) for f in asked[:2])
    assert str(jpg) in e1["message"] and "corrupt or unreadable image" in e1["message"]
    assert "image file is empty (0 bytes)" in e2["message"] and "CAM_FRONT" in e2["message"]
    assert len(server.requests) == 14  # the two broken frames never reached the server


def test_the_api_key_is_sent_but_never_written(tiny_dataset, asked, server, tmp_path, monkeypatch):
    monkeypatch.setenv("RISKDISTILL_TEST_KEY", "sk-hostile-4242")
    server.script.extend([good(), raw(401, b'{"error": "bad key"}', "application/json")])
    out = tmp_path / "vlm"
    cfg = teacher_config(server.url, api_key_env="RISKDISTILL_TEST_KEY")
    res = label_dataset(tiny_dataset, out, VLMTeacher(cfg), GRID, limit=4, show_progress=False)
    assert res.errors == {"http": 1}
    assert {r["headers"]["Authorization"] for r in server.requests} == {"Bearer sk-hostile-4242"}
    written = snapshot(out)
    assert written and not [p for p, b in written.items() if b"sk-hostile-4242" in b]
    assert any(b"RISKDISTILL_TEST_KEY" in b for b in written.values())  # only the variable's name


# ------------------------------------------------------------------------------------------ dead servers
def test_a_dead_server_stops_the_run_clearly_and_keeps_what_was_written(tiny_dataset, server, tmp_path):
    out = tmp_path / "vlm"
    cfg = tmp_path / "vlm.json"
    cfg.write_text(json.dumps(teacher_config("unused", max_retries=1, max_consecutive_failures=3)))
    base = ["--data", tiny_dataset, "--out", out, "--teacher", "vlm", "--backend", "openai", "--model-name",
            "scripted", "--teacher-config", cfg, "--no-progress", "--no-card"]  # fmt: skip
    code, text = cli(label_command, "label", *base, "--server-url", server.url, "--limit", "6")
    assert code == 0, text
    before = snapshot(out, ("records/**/*.json", "maps/**/*.npy", "index/*"))
    sock, url = dead_url()
    with sock:
        t0 = time.monotonic()
        code, text = cli(label_command, "label", *base, "--server-url", url, "--limit", "40")
        elapsed = time.monotonic() - t0
    assert code == 2 and "Traceback" not in text, text
    text = flat(text)
    assert f"labelling stopped: the VLM server {url} is not answering: 3 attempts in a row failed" in text
    assert "Connection refused" in text and "rerun the same command to resume" in text
    assert elapsed < 30, elapsed  # no 8 requests per frame for the whole data set
    assert snapshot(out, ("records/**/*.json", "maps/**/*.npy", "index/*")) == before
    assert not list((out / "errors").rglob("*.json"))  # no frame blamed for the server
    code, text = cli(label_command, "label", *base, "--server-url", server.url, "--limit", "40")
    assert code == 0 and "already done" in text, text
    assert len(list((out / "records").rglob("*.json"))) == 40


def test_a_server_that_accepts_but_never_answers_trips_the_breaker(tiny_dataset, asked, server):
    from riskdistill.teacher.vlm.backends.base import BackendUnavailableError

    server.delay_s = 30.0  # accepts every connection, answers none in time
    cfg = teacher_config(server.url, timeout_s=0.5, max_consecutive_failures=2, concurrency=2)
    teacher = VLMTeacher(cfg)
    with pytest.raises(BackendUnavailableError, match=r"2 attempts in a row failed .*within 0\.5 s"):
        teacher.label_many(_frames(tiny_dataset, asked[:4]))
    with pytest.raises(BackendUnavailableError):  # stays open: nothing more is sent
        n = len(server.requests)
        teacher.label_many(_frames(tiny_dataset, asked[:4]))
    assert len(server.requests) == n


# ------------------------------------------------------------------------------------------ kill and resume
def test_killed_labelling_resumes_without_rewriting_or_reasking(tiny_dataset, asked, server, tmp_path):
    server.delay_s = 0.3
    out = tmp_path / "vlm"
    cfg = tmp_path / "vlm.json"
    cfg.write_text(json.dumps(teacher_config("unused")))
    args = ["label", "--data", tiny_dataset, "--out", out, "--teacher", "vlm", "--backend", "openai",
            "--model-name", "scripted", "--server-url", server.url, "--teacher-config", cfg, "--limit", "16",
            "--batch-size", "1", "--no-progress", "--no-card"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "riskdistill.cli.main", *map(str, args)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(list((out / "records").rglob("*.json"))) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the labelling run ended too early"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    written = snapshot(out, ("records/**/*.json", "maps/**/*.npy"))
    n_written = len([k for k in written if k.startswith("records/")])
    n_before = len(server.requests)
    server.delay_s = 0.0
    code, text = cli(label_command, "label", *args[1:])
    assert code == 0, text
    after = snapshot(out, ("records/**/*.json", "maps/**/*.npy"))
    assert {k: after[k] for k in written} == written  # what the killed run wrote is untouched
    assert len([k for k in after if k.startswith("records/")]) == 16
    # only frames without a record are asked (the one in flight at the kill included), each once
    assert len(server.requests) - n_before == 16 - n_written
