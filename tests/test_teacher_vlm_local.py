"""VLM teacher through the local backend: a tiny random Qwen2.5-VL (built from configs, no download) with
xgrammar JSON-schema constrained decoding labels real recorded frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("xgrammar")

from riskdistill.data import RecordedDataset  # noqa: E402
from riskdistill.teacher.grounding import ground_truth_objects  # noqa: E402
from riskdistill.teacher.schema import FrameLabel  # noqa: E402
from riskdistill.teacher.tiny_vlm import build_tiny_vlm  # noqa: E402
from riskdistill.teacher.vlm import (  # noqa: E402
    DEFAULT_TEMPLATE,
    REPLY_ERROR_KINDS,
    CameraConfigError,
    ReplyError,
    VLLMNotInstalledError,
    VLMTeacher,
    build_backend,
    load_template,
)

SMALL = {"reason_max_chars": 16, "summary_max_chars": 16, "max_objects": 3}
torch.set_num_threads(1)  # 2 shared cores: more threads only thrash


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL folder, built once per session (idempotent: reused when it exists)."""
    return build_tiny_vlm(tmp_path_factory.getbasetemp() / "tiny_vlm", seed=0)


@pytest.fixture(scope="module")
def frames(tiny_dataset: Path):
    """Recorded frames where the front camera sees at least one actor (and one where it sees none)."""
    ds = RecordedDataset(tiny_dataset)
    with_objects = []
    for i in range(len(ds)):
        f = ds[i]
        if any(o.camera == "CAM_FRONT" or "CAM_FRONT" in o.cameras for o in ground_truth_objects(f)):
            with_objects.append(f)
    assert len(with_objects) >= 2, "the tiny data set should have frames with visible actors"
    return with_objects[:: max(1, len(with_objects) // 2)][:2]


def local_teacher(model_dir: Path, **over) -> VLMTeacher:
    cfg = {
        "backend": {"type": "local", "model_dir": str(model_dir), "batch_size": 3},
        "decoding": {"max_new_tokens": 300},
        **SMALL,
        **over,
    }
    return VLMTeacher(cfg)


def check_raw_matches_schema(raw: str, ids: set[int]) -> None:
    """The constrained reply itself (before any repair) is JSON that follows the frame's schema."""
    data = json.loads(raw, strict=False)  # xgrammar lets raw control characters into strings
    assert set(data) == {"objects", "summary"}
    assert len(data["summary"]) <= SMALL["summary_max_chars"]
    assert 1 <= len(data["objects"]) <= len(ids)
    for item in data["objects"]:
        assert list(item) == ["id", "risk", "reason"]
        assert item["id"] in ids
        assert 0.0 <= item["risk"] <= 1.0
        assert len(item["reason"]) <= SMALL["reason_max_chars"]


def test_tiny_vlm_folder_is_small_and_loads_offline(tiny_vlm_dir: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    files = {p.name for p in tiny_vlm_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files
    assert sum(p.stat().st_size for p in tiny_vlm_dir.iterdir()) < 2_000_000
    proc = AutoProcessor.from_pretrained(tiny_vlm_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir, local_files_only=True)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    want = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n"
    assert text == want + "<|im_start|>assistant\n"
    assert build_tiny_vlm(tiny_vlm_dir) == tiny_vlm_dir  # reused, not rebuilt


def test_local_backend_with_constrained_decoding_labels_recorded_frames(tiny_vlm_dir: Path, frames):
    teacher = local_teacher(tiny_vlm_dir, cameras="all")
    prepared = [teacher.prepare(f) for f in frames]
    assert all(len(p.request.images) == 6 for p in prepared)  # all cameras
    out = teacher.label_many(frames)
    assert len(out) == len(frames)
    template = load_template(DEFAULT_TEMPLATE)
    for frame, p, label in zip(frames, prepared, out, strict=True):
        assert isinstance(label, FrameLabel), f"constrained decoding gave an invalid reply: {label}"
        assert label.frame_id == frame.frame_id
        ids = set(p.objects)
        assert label.objects and {o.object_id for o in label.objects} <= ids
        grounded = {o.object_id: o for o in ground_truth_objects(frame)}
        for o in label.objects:
            assert o.cls == grounded[o.object_id].cls
        assert [o.rank for o in label.objects] == list(range(1, len(label.objects) + 1))
        assert label.frame_risk == max(o.risk for o in label.objects)
        prov = label.provenance
        assert prov.teacher == "vlm" and prov.model_id == str(tiny_vlm_dir)
        assert prov.model_revision.startswith("fp-")
        assert prov.prompt_template_id == "risk_rank_v2" and prov.prompt_hash == template.prompt_hash
        assert prov.config_hash == teacher.config_hash
        assert prov.decoding["constrained"] is True and prov.decoding["backend"] == "local"
        assert prov.decoding["attempt"] == 1 and prov.seed == 0
        check_raw_matches_schema(prov.raw_response, ids)
        assert FrameLabel.model_validate_json(label.model_dump_json()) == label
    # greedy decoding is deterministic: the same frames give the same replies
    again = local_teacher(tiny_vlm_dir, cameras="all").label_many(frames)
    assert [a.provenance.raw_response for a in again] == [b.provenance.raw_response for b in out]


def test_front_camera_prompt_and_sampled_decoding(tiny_vlm_dir: Path, frames):
    teacher = local_teacher(
        tiny_vlm_dir, cameras="front", decoding={"max_new_tokens": 300, "temperature": 1.0}
    )
    p = teacher.prepare(frames[0])
    assert [im.camera for im in p.request.images] == ["CAM_FRONT"]
    assert all(o.camera == "CAM_FRONT" or "CAM_FRONT" in o.cameras for o in p.objects.values())
    label = teacher.label(frames[0])
    assert label.provenance.decoding["temperature"] == 1.0
    check_raw_matches_schema(label.provenance.raw_response, set(p.objects))


def test_unconstrained_random_model_failures_are_recorded(tiny_vlm_dir: Path, frames):
    teacher = local_teacher(
        tiny_vlm_dir, decoding={"max_new_tokens": 16, "constrained": False}, max_attempts=2
    )
    out = teacher.label_many(frames)
    assert len(out) == len(frames)
    for r in out:  # random bytes: parsed honestly, a failure keeps the model's text
        if isinstance(r, ReplyError):
            assert r.kind in REPLY_ERROR_KINDS and r.kind not in ("http", "timeout", "connection")
            assert r.attempts == 2
            assert r.raw_text.strip() or r.kind == "empty"
        else:
            assert isinstance(r, FrameLabel)


def test_cut_off_reply_raises_a_truncated_error(tiny_vlm_dir: Path, frames):
    # the grammar forces '{"objects": [{"id": ...' first: 4 tokens cannot finish one entry
    teacher = local_teacher(tiny_vlm_dir, decoding={"max_new_tokens": 4}, max_attempts=2)
    with pytest.raises(ReplyError) as exc:
        teacher.label(frames[0])
    assert exc.value.kind == "truncated" and exc.value.attempts == 2
    raw = exc.value.raw_text
    assert raw and ('{"objects": [{"id": '.startswith(raw) or raw.startswith('{"objects": ['))


def test_frames_without_objects_need_no_model_call(tiny_vlm_dir: Path, frames):
    teacher = VLMTeacher(
        {"backend": {"type": "local", "model_dir": str(tiny_vlm_dir)}}, grounder=lambda frame: []
    )
    label = teacher.label(frames[0])
    assert label.objects == [] and label.frame_risk == 0.0
    assert label.provenance.raw_response is None and label.provenance.decoding["skipped"] == "no objects"
    assert teacher.backend._model is None  # never loaded


def test_config_hash_tracks_what_changes_labels(tiny_vlm_dir: Path, tmp_path: Path):
    base = local_teacher(tiny_vlm_dir)
    assert base.config_hash == local_teacher(tiny_vlm_dir).config_hash
    # operational settings do not change the labels
    same = VLMTeacher(
        {
            "backend": {"type": "local", "model_dir": str(tiny_vlm_dir), "batch_size": 1, "device": "cpu"},
            "decoding": {"max_new_tokens": 300},
            **SMALL,
        }
    )
    assert same.config_hash == base.config_hash
    assert local_teacher(tiny_vlm_dir, decoding={"max_new_tokens": 300, "temperature": 0.7}).config_hash != (
        base.config_hash
    )
    assert local_teacher(tiny_vlm_dir, cameras="all").config_hash != base.config_hash
    tpl = tmp_path / "risk_rank_v1_edit.jinja"
    tpl.write_text(load_template("risk_rank_v1").text + "\nBe careful.\n")
    assert local_teacher(tiny_vlm_dir, prompt=str(tpl)).config_hash != base.config_hash


def test_unknown_camera_is_a_configuration_error(tiny_vlm_dir: Path, frames):
    teacher = local_teacher(tiny_vlm_dir, cameras=["CAM_TOP"])
    with pytest.raises(CameraConfigError, match="CAM_TOP"):
        teacher.label_many(frames[:1])


def test_vllm_backend_without_vllm_says_how_to_install(tiny_vlm_dir: Path):
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    with pytest.raises(VLLMNotInstalledError, match="pip install vllm"):
        build_backend({"type": "vllm", "model_dir": str(tiny_vlm_dir)})
    with pytest.raises(ValueError, match="valid VLM backends"):
        build_backend({"type": "nope"})


def test_an_unreadable_image_fails_only_its_frame(tiny_vlm_dir: Path, frames):
    import dataclasses

    broken = dataclasses.replace(frames[0], frame_id="broken/00000", image_paths=("routes/missing.jpg",) * 6)
    out = local_teacher(tiny_vlm_dir).label_many([broken, frames[1]])
    assert isinstance(out[0], ReplyError) and out[0].kind == "input"  # the frame's own data: never sent
    assert "missing.jpg: image file is missing" in out[0].message
    assert isinstance(out[1], FrameLabel) and out[1].frame_id == frames[1].frame_id
