"""The labelling runner: records + maps, kill and resume, error records, cache keys, shards, processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from riskdistill.data.storage import RecordedDataset
from riskdistill.data.targets import RiskMapTarget
from riskdistill.geometry import BevGrid
from riskdistill.teacher import OracleConfig, OracleTeacher
from riskdistill.teacher.runner import (
    label_dataset,
    load_record,
    parse_shard,
    read_index,
    shard_of,
)
from riskdistill.teacher.schema import FrameLabel

GRID = BevGrid.preset("tiny")


class CountingTeacher:
    """The oracle, counting calls; raises ``KeyboardInterrupt`` (a kill) after ``kill_after`` calls and a
    ``ValueError`` / a reply error object on the frames listed."""

    def __init__(self, config: OracleConfig | None = None, kill_after: int | None = None, fail_on=(), bad=()):
        self.inner = OracleTeacher(config)
        self.config = self.inner.config
        self.calls: list[str] = []
        self.kill_after = kill_after
        self.fail_on = set(fail_on)
        self.bad = set(bad)

    def label(self, frame):
        if self.kill_after is not None and len(self.calls) >= self.kill_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls.append(frame.frame_id)
        if frame.frame_id in self.fail_on:
            raise ValueError(f"teacher exploded on {frame.frame_id}")
        if frame.frame_id in self.bad:
            return _ReplyError("invalid_json", "no JSON object in the reply", "Sure! The risk is high.")
        return self.inner.label(frame)


class _ReplyError:
    def __init__(self, kind: str, message: str, raw_text: str):
        self.kind, self.message, self.raw_text = kind, message, raw_text


def _snapshot(out: Path) -> dict[str, bytes]:
    """Every record and map of a label folder, by relative path."""
    files = sorted([*(out / "records").rglob("*.json"), *(out / "maps").rglob("*.npy")])
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def frame_ids(tiny_dataset) -> list[str]:
    return RecordedDataset(tiny_dataset).table.column("frame_id").to_pylist()


@pytest.fixture(scope="module")
def reference(tiny_dataset, tmp_path_factory) -> Path:
    """An uninterrupted oracle run over the tiny data set."""
    out = tmp_path_factory.mktemp("ref") / "risk"
    res = label_dataset(tiny_dataset, out, OracleTeacher(), GRID, show_progress=False)
    assert res.labelled == res.frames_in_shard and res.n_errors == 0
    return out


def test_records_and_maps_match_the_teacher_and_risk_map_target(tiny_dataset, reference, frame_ids) -> None:
    ds = RecordedDataset(tiny_dataset)
    assert sorted(read_index(reference)) == sorted(frame_ids)
    teacher = OracleTeacher()
    for i in (0, len(ds) // 2, len(ds) - 1):
        frame = ds[i]
        rec = load_record(reference, frame.frame_id)
        assert rec == teacher.label(frame)
        raw = json.loads((reference / "records" / f"{frame.frame_id}.json").read_text())
        assert FrameLabel.model_validate(raw) == rec
        m = RiskMapTarget(reference).build(frame, GRID)["risk_map"]
        assert m.shape == (1, *GRID.shape) and m.min() >= 0.0 and m.max() <= 1.0
        if rec.objects and any(GRID.contains(frame.annotation["actor_center_ego"][:, :2])):
            assert m.max() > 0.0
    settings = json.loads((reference / "labelling.json").read_text())
    assert settings["grid"] == GRID.to_dict() and settings["teacher"] == "oracle"
    (run,) = sorted((reference / "runs").iterdir())
    assert {"run.json", "log.txt", "summary.json"} <= {p.name for p in run.iterdir()}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["labelled"] == len(frame_ids) and summary["frames_per_s"] > 0


def test_kill_and_resume_gives_identical_labels_without_recomputing(
    tiny_dataset, reference, tmp_path
) -> None:
    out = tmp_path / "risk"
    killed = CountingTeacher(kill_after=7)
    with pytest.raises(KeyboardInterrupt):
        label_dataset(tiny_dataset, out, killed, GRID, batch_size=3, show_progress=False)
    assert len(killed.calls) == 7
    done = set(read_index(out))
    assert done == set(killed.calls)  # every frame the teacher answered is finished, none more
    resumed = CountingTeacher()
    res = label_dataset(tiny_dataset, out, resumed, GRID, batch_size=3, show_progress=False)
    assert res.skipped == 7 and res.labelled == res.frames_in_shard - 7
    assert not set(resumed.calls) & done  # finished frames are never recomputed
    assert _snapshot(out) == _snapshot(reference)
    again = CountingTeacher()
    res = label_dataset(tiny_dataset, out, again, GRID, show_progress=False)
    assert again.calls == [] and res.skipped == res.frames_in_shard


def test_a_record_without_its_index_line_is_rasterised_not_asked_again(
    tiny_dataset, reference, tmp_path
) -> None:
    """A kill after a frame's record was written but before its index line: the record is whole and current,
    so the resumed run re-rasterises that frame without asking the teacher (a VLM call is not repeated)."""
    out = tmp_path / "risk"
    shutil.copytree(reference, out)
    index_file = next(iter(sorted((out / "index").glob("*.jsonl"))))
    lines = index_file.read_text().splitlines(keepends=True)
    lost = json.loads(lines[-1])["frame_id"]
    index_file.write_text("".join(lines[:-1]))
    teacher = CountingTeacher()
    res = label_dataset(tiny_dataset, out, teacher, GRID, show_progress=False)
    assert teacher.calls == [] and res.rasterised == 1 and res.labelled == 0
    assert lost in read_index(out) and _snapshot(out) == _snapshot(reference)
    # a record of another teacher config without an index line is not trusted: asked again
    lines = index_file.read_text().splitlines(keepends=True)
    index_file.write_text("".join(lines[:-1]))
    other = CountingTeacher(OracleConfig(horizon_s=3.0))
    res = label_dataset(tiny_dataset, out, other, GRID, show_progress=False)
    assert lost in other.calls and res.labelled == len(other.calls)


def test_one_bad_frame_gets_an_error_record_and_the_rest_is_labelled(
    tiny_dataset, frame_ids, tmp_path
) -> None:
    out = tmp_path / "risk"
    boom, bad = frame_ids[3], frame_ids[10]
    teacher = CountingTeacher(fail_on=[boom], bad=[bad])
    res = label_dataset(tiny_dataset, out, teacher, GRID, show_progress=False)
    assert res.errors == {"ValueError": 1, "invalid_json": 1}
    assert res.labelled == len(frame_ids) - 2
    err = json.loads((out / "errors" / f"{boom}.json").read_text())
    assert err["kind"] == "ValueError" and "exploded" in err["message"] and err["frame_id"] == boom
    err = json.loads((out / "errors" / f"{bad}.json").read_text())
    assert err["kind"] == "invalid_json" and err["raw_text"] == "Sure! The risk is high."
    assert not (out / "records" / f"{boom}.json").exists() and not (out / "maps" / f"{bad}.npy").exists()
    # the next run retries only the failed frames; success removes the error records
    retry = CountingTeacher()
    res = label_dataset(tiny_dataset, out, retry, GRID, show_progress=False)
    assert sorted(retry.calls) == sorted([boom, bad]) and res.n_errors == 0
    assert not list((out / "errors").rglob("*.json"))


class _ConfigProblemError(ValueError):
    fatal = True


def test_configuration_errors_stop_the_run(tiny_dataset, tmp_path) -> None:
    class Misconfigured(CountingTeacher):
        def label(self, frame):
            raise _ConfigProblemError("camera CAM_X is not in the data set")

    with pytest.raises(_ConfigProblemError):
        label_dataset(tiny_dataset, tmp_path / "a", Misconfigured(), GRID, show_progress=False)
    assert not (tmp_path / "a" / "errors").exists()
    teacher = CountingTeacher(fail_on=["x"])
    teacher.label = lambda frame: (_ for _ in ()).throw(KeyError("no such thing"))  # type: ignore[method-assign]
    with pytest.raises(KeyError):
        label_dataset(tiny_dataset, tmp_path / "b", teacher, GRID, fatal=(KeyError,), show_progress=False)


def test_changed_config_relabels_and_changed_grid_only_rerasterises(
    tiny_dataset, reference, tmp_path
) -> None:
    out = tmp_path / "risk"
    shutil.copytree(reference, out)
    n = len(read_index(out))
    changed = CountingTeacher(OracleConfig(horizon_s=3.0))
    res = label_dataset(tiny_dataset, out, changed, GRID, show_progress=False)
    assert res.labelled == n and len(changed.calls) == n
    rec = next(iter(sorted((out / "records").rglob("*.json"))))
    assert (
        FrameLabel.model_validate_json(rec.read_bytes()).provenance.config_hash
        == changed.config.config_hash()
    )
    # a different grid: the stored labels are reused, only the maps are made again
    grid2 = BevGrid.centered(32.0, 32.0, 0.5, x_offset_m=8.0)
    same = CountingTeacher(OracleConfig(horizon_s=3.0))
    res = label_dataset(tiny_dataset, out, same, grid2, show_progress=False)
    assert same.calls == [] and res.rasterised == n
    assert np.load(next(iter((out / "maps").rglob("*.npy")))).shape == grid2.shape
    # back to the original config: relabelled again (the index's last entry per frame wins)
    back = CountingTeacher()
    label_dataset(tiny_dataset, out, back, GRID, show_progress=False)
    assert len(back.calls) == n
    assert _snapshot(out) == _snapshot(reference)


def test_shards_are_disjoint_and_cover_everything(tiny_dataset, frame_ids, tmp_path) -> None:
    out = tmp_path / "risk"
    seen: list[str] = []
    for i in range(3):
        t = CountingTeacher()
        res = label_dataset(tiny_dataset, out, t, GRID, shard=f"{i}/3", show_progress=False)
        assert res.frames_in_shard == len(t.calls) and all(shard_of(f, 3) == i for f in t.calls)
        seen += t.calls
    assert sorted(seen) == sorted(frame_ids) and len(set(seen)) == len(seen)
    assert sorted(read_index(out)) == sorted(frame_ids)
    assert sorted(p.name for p in (out / "index").iterdir()) == [f"shard-{i}-of-3.jsonl" for i in range(3)]
    with pytest.raises(ValueError, match="i/n"):
        parse_shard("1-3")
    with pytest.raises(ValueError, match="0 <= i < n"):
        parse_shard("3/3")


def test_two_spawned_processes_give_the_same_labels(tiny_dataset, reference, tmp_path) -> None:
    out = tmp_path / "risk"
    res = label_dataset(
        tiny_dataset, out, OracleTeacher(), GRID, workers=2, batch_size=16, show_progress=False
    )
    assert res.labelled == res.frames_in_shard and res.n_errors == 0
    assert _snapshot(out) == _snapshot(reference)


def test_ray_data_actor_pool_gives_the_same_labels(tiny_dataset, reference, tmp_path) -> None:
    ray = pytest.importorskip("ray")
    from riskdistill.teacher.distributed import label_dataset_ray

    out = tmp_path / "risk"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        res = label_dataset_ray(
            tiny_dataset, out, OracleTeacher, GRID, num_actors=2, batch_size=16, show_progress=False
        )
    finally:
        ray.shutdown()
    assert res.labelled == res.frames_in_shard and res.n_errors == 0
    assert _snapshot(out) == _snapshot(reference)
    # the in-process runner resumes a Ray run: nothing left to do
    again = CountingTeacher()
    assert label_dataset(tiny_dataset, out, again, GRID, show_progress=False).skipped == res.frames_in_shard
    assert again.calls == []


def _flat(text: str) -> str:
    """Console output without rich's line wrapping."""
    return text.replace("\n", "")


def test_label_command_labels_writes_the_card_and_fails_cleanly(tiny_dataset, tmp_path) -> None:
    import typer
    from typer.testing import CliRunner

    from riskdistill.cli.label import label

    app = typer.Typer()
    app.command()(label)
    app.command("other")(lambda: None)  # two commands: `label` is addressed by name, as in the main app
    runner = CliRunner()
    out = tmp_path / "risk"
    args = ["label", "--data", str(tiny_dataset), "--out", str(out), "--limit", "6", "--no-progress"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert len(list((out / "records").rglob("*.json"))) == 6
    card = json.loads((out / "label_card.json").read_text())
    assert card["coverage"]["frames_labelled"] == 6
    assert card["coverage"]["frames_total"] == RecordedDataset(tiny_dataset).table.num_rows
    res = runner.invoke(app, [*args, "--teacher", "human"])
    assert res.exit_code == 2 and "unknown --teacher 'human'" in _flat(res.output)
    res = runner.invoke(app, [*args, "--shard", "2/2"])
    assert res.exit_code == 2 and "0 <= i < n" in _flat(res.output)
    res = runner.invoke(app, ["label", "--data", str(tmp_path / "nope"), "--no-progress"])
    assert res.exit_code == 2 and "manifest.json" in _flat(res.output)
    bad = tmp_path / "oracle.json"
    bad.write_text(json.dumps({"horizon_sec": 3}))
    res = runner.invoke(app, [*args, "--teacher-config", str(bad)])
    assert res.exit_code == 2 and "horizon_sec" in _flat(res.output)
    res = runner.invoke(app, [*args, "--teacher", "vlm", "--backend", "local"])
    assert res.exit_code == 2 and "--model DIR" in _flat(res.output)
    res = runner.invoke(
        app, [*args, "--teacher", "vlm", "--backend", "local", "--model", str(tmp_path / "none")]
    )
    assert res.exit_code == 2 and "cannot build the vlm teacher" in _flat(res.output)


class ScriptedBackend:
    """A VLM backend replying from a script: valid JSON listing the prompt's objects, on every third frame
    ranked in the wrong order (a reply the schema accepts but whose ranking contradicts its scores), and
    prose without JSON for one frame."""

    name = "scripted"
    model_id = "scripted-vlm"
    model_revision = "r1"

    def __init__(self, prose_on: str):
        self.prose_on = prose_on
        self.requests = 0

    @staticmethod
    def _ids(schema) -> list[int]:
        if isinstance(schema, dict):
            if "enum" in schema and all(isinstance(v, int) for v in schema["enum"]):
                return list(schema["enum"])
            for v in schema.values():
                if ids := ScriptedBackend._ids(v):
                    return ids
        if isinstance(schema, list):
            for v in schema:
                if ids := ScriptedBackend._ids(v):
                    return ids
        return []

    def generate(self, requests):
        out = []
        for r in requests:
            self.requests += 1
            if r.request_id == self.prose_on:
                out.append("Sure! The pedestrian looks dangerous.")
                continue
            ids = self._ids(r.json_schema)
            risks = [round(0.9 - 0.1 * k, 2) for k in range(len(ids))]
            step = int(r.request_id.rsplit("/", 1)[1])
            if step % 3 == 0:
                risks = risks[::-1]  # listed first but scored lowest
            objs = [{"id": i, "risk": s, "reason": "close"} for i, s in zip(ids, risks, strict=True)]
            out.append(json.dumps({"objects": objs, "summary": "scripted"}))
        return out

    def decoding_params(self):
        return {"backend": self.name}

    def close(self):
        pass


def test_vlm_teacher_through_the_runner_batches_records_failures_and_diff_risk(
    tiny_dataset, frame_ids, tmp_path
):
    vlm = pytest.importorskip("riskdistill.teacher.vlm")
    from riskdistill.teacher.quality import compute_rank_consistency, load_labels

    prose = frame_ids[4]
    backend = ScriptedBackend(prose_on=prose)
    cfg = {"backend": {"type": "openai", "model": "scripted"}, "cameras": "all", "max_attempts": 1}
    teacher = vlm.VLMTeacher(cfg, backend=backend)
    out = tmp_path / "vlm"
    res = label_dataset(tiny_dataset, out, teacher, GRID, batch_size=8, limit=24, show_progress=False)
    assert res.labelled == 23 and sum(res.errors.values()) == 1
    err = json.loads(next((out / "errors").rglob("*.json")).read_text())
    assert err["frame_id"] == prose and err["raw_text"] == "Sure! The pedestrian looks dangerous."
    labels = load_labels(out)
    assert len(labels) == 23 and all(lab.provenance.teacher == "vlm" for lab in labels.values())
    assert {lab.provenance.config_hash for lab in labels.values()} == {teacher.config_hash}
    # the raw replies' rankings: reversed frames contribute all their pairs as discordant
    rc = compute_rank_consistency(labels.values())
    want = sum(
        len(lab.objects) * (len(lab.objects) - 1) // 2
        for fid, lab in labels.items()
        if int(fid.rsplit("/", 1)[1]) % 3 == 0
    )
    assert rc.frames_from_reply > 0 and rc.discordant == want and rc.pairs >= want
    # maps: objects painted where their actors are
    some = next(f for f, lab in labels.items() if lab.objects)
    assert np.load(out / "maps" / f"{some}.npy").max() > 0
    # the label card measures VLM labels as it measures the oracle's: hazard recall on the scenarios' named
    # hazards, and scale-aware agreement with an oracle folder
    from riskdistill.teacher.card import build_label_card
    from riskdistill.teacher.quality import hazard_recall

    oracle_dir = tmp_path / "oracle"
    label_dataset(tiny_dataset, oracle_dir, OracleTeacher(), GRID, limit=24, show_progress=False)
    card = build_label_card(out, data_root=tiny_dataset, other_label_dir=oracle_dir, write=False)
    hz = card["hazard_recall"]
    assert (
        hz["all"]["frames"] == 23
        and hz["all"]["frames"] == hazard_recall(labels, tiny_dataset)["all"]["frames"]
    )
    assert hz["all"]["non_hazard"] > 0 and card["agreement"]["shared_frames"] == 23
    assert card["agreement"]["score_mad"] > 0.05  # the scripted replies are on another scale
    # resume: only the failed frame is asked again
    n = backend.requests
    res = label_dataset(tiny_dataset, out, teacher, GRID, batch_size=8, limit=24, show_progress=False)
    assert backend.requests - n == 1 and res.skipped == 23
