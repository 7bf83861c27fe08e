"""VLM teacher, model-free parts: prompt templates, the reply schema, reply parsing/repair and labels."""

from __future__ import annotations

import json
import math

import pytest

from riskdistill.teacher.objects import GroundedObject
from riskdistill.teacher.schema import FrameLabel, Provenance
from riskdistill.teacher.vlm import (
    REPLY_ERROR_KINDS,
    ParseConfig,
    PromptError,
    ReplyError,
    RiskReply,
    build_label,
    list_templates,
    load_template,
    parse_reply,
    reply_json_schema,
)
from riskdistill.teacher.vlm.prompt import object_line, select_objects

IDS = [3, 7, 12]
GOOD = {
    "objects": [
        {"id": 7, "risk": 0.8, "reason": "pedestrian crossing ahead"},
        {"id": 3, "risk": 0.2, "reason": "parked car"},
    ],
    "summary": "a pedestrian crosses in front of the ego",
}


def _kind(text: str | None, ids=IDS, **cfg) -> str:
    with pytest.raises(ReplyError) as exc:
        parse_reply(text, ids, ParseConfig(**cfg))
    assert exc.value.kind in REPLY_ERROR_KINDS
    assert exc.value.raw_text == (text or "")  # the raw text is kept for the failure record
    return exc.value.kind


def obj(oid: int, cls: str = "car", camera: str = "CAM_FRONT", dist: float = 10.0, cams=()) -> GroundedObject:
    return GroundedObject(
        object_id=oid,
        cls=cls,
        camera=camera,
        box2d=(10.0, 20.0, 30.0, 50.0),
        cameras=tuple(cams) or (camera,),
        center_xy_m=(dist, 1.0),
        distance_m=dist,
        closing_speed_mps=2.5,
    )


# ------------------------------------------------------------------------------------------ valid replies
def test_valid_reply_keeps_order_and_values():
    p = parse_reply(json.dumps(GOOD), IDS)
    assert p.objects == [(7, 0.8, "pedestrian crossing ahead"), (3, 0.2, "parked car")]
    assert p.summary == GOOD["summary"]
    assert p.repairs == []


def test_empty_objects_list_is_valid_only_when_nothing_was_listed():
    p = parse_reply('{"objects": [], "summary": "quiet road"}', [])
    assert p.objects == [] and p.summary == "quiet road"
    # objects were listed: the schema sent asks for at least one (a lazy server must not yield risk-0 labels)
    with pytest.raises(ReplyError, match="'objects' is empty") as e:
        parse_reply('{"objects": [], "summary": "quiet road"}', IDS)
    assert e.value.kind == "schema" and e.value.raw_text == '{"objects": [], "summary": "quiet road"}'


# ------------------------------------------------------------------------------------------ repairs
def test_prose_and_code_fences_around_json_are_stripped():
    text = "Sure! Here is my assessment:\n```json\n" + json.dumps(GOOD) + "\n```\nLet me know."
    p = parse_reply(text, IDS)
    assert [o[0] for o in p.objects] == [7, 3]
    assert "code_fence" in p.repairs
    p2 = parse_reply("The answer is " + json.dumps(GOOD) + " -- hope that helps {not json", IDS)
    assert [o[0] for o in p2.objects] == [7, 3] and "prose" in p2.repairs


def test_braces_inside_strings_do_not_confuse_the_scanner():
    reply = {"objects": [{"id": 3, "risk": 0.5, "reason": "odd } text ] with {brackets"}], "summary": "}"}
    p = parse_reply("prefix " + json.dumps(reply), IDS)
    assert p.objects[0][2] == "odd } text ] with {brackets"


def test_truncated_reply_is_closed_after_the_last_complete_entry():
    full = json.dumps(GOOD)
    cut = full[: full.index('"parked')]  # inside the second entry
    p = parse_reply(cut, IDS)
    assert p.objects == [(7, 0.8, "pedestrian crossing ahead")]  # the partial entry is dropped
    assert "closed_truncated" in p.repairs and p.summary == ""
    cut2 = full[: full.index('"a pedestrian') + 5]  # inside the summary string
    p2 = parse_reply(cut2, IDS)
    assert [o[0] for o in p2.objects] == [7, 3] and p2.summary == ""


def test_truncated_before_any_complete_entry_is_rejected():
    assert _kind('{"objects": [{"id": 7, "risk": 0.') == "truncated"
    assert _kind('{"objects": [{"id": 7, "risk": 0.8, "reason": "pedes') == "truncated"
    assert _kind('{"summary": "x", "objects": [{"id": 7') == "truncated"
    full = json.dumps(GOOD)
    assert _kind(full[: full.index('"parked')], close_truncated=False) == "truncated"


def test_numeric_strings_are_coerced_but_percent_is_not():
    p = parse_reply('{"objects": [{"id": "12", "risk": "0.7", "reason": "x"}], "summary": ""}', IDS)
    assert p.objects == [(12, 0.7, "x")] and "coerced_number" in p.repairs
    p = parse_reply('{"objects": [{"id": 12.0, "risk": 1, "reason": "x"}], "summary": ""}', IDS)
    assert p.objects == [(12, 1.0, "x")]
    assert _kind('{"objects": [{"id": 12, "risk": "70%", "reason": "x"}], "summary": ""}') == "schema"
    assert (
        _kind(
            '{"objects": [{"id": 12, "risk": "0.7", "reason": "x"}], "summary": ""}',
            coerce_numeric_strings=False,
        )
        == "schema"
    )


def test_missing_reason_and_summary_default_to_empty_and_long_reasons_are_cut():
    p = parse_reply('{"objects": [{"id": 3, "risk": 0.4}]}', IDS)
    assert p.objects == [(3, 0.4, "")] and {"missing_reason", "missing_summary"} <= set(p.repairs)
    long = "x" * 500
    p = parse_reply(json.dumps({"objects": [{"id": 3, "risk": 0.4, "reason": long}], "summary": long}), IDS)
    assert len(p.objects[0][2]) == 200 and "reason_cut" in p.repairs and len(p.summary) <= 800


def test_control_characters_in_strings_are_replaced():
    p = parse_reply('{"objects": [{"id": 3, "risk": 0.4, "reason": "a\x1bb\tc"}], "summary": "s\x00"}', IDS)
    assert p.objects[0][2] == "a b c" and p.summary == "s"


def test_float_noise_just_outside_the_range_is_clipped():
    p = parse_reply('{"objects": [{"id": 3, "risk": 1.0000000001, "reason": ""}], "summary": ""}', IDS)
    assert p.objects[0][1] == 1.0 and "clipped" in p.repairs


def test_duplicate_ids_keep_the_first_entry_or_are_rejected():
    text = json.dumps(
        {
            "objects": [
                {"id": 3, "risk": 0.9, "reason": "first"},
                {"id": 7, "risk": 0.5, "reason": "b"},
                {"id": 3, "risk": 0.1, "reason": "again"},
            ],
            "summary": "",
        }
    )
    p = parse_reply(text, IDS)
    assert p.objects == [(3, 0.9, "first"), (7, 0.5, "b")] and "duplicate_id" in p.repairs
    assert _kind(text, duplicate_ids="reject") == "duplicate_id"


# ------------------------------------------------------------------------------------------ rejections
@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        (None, "empty"),
        ("I cannot help with that.", "no_json"),
        ('{"objects": [}]', "syntax"),
        ('{"objects": [{"id": 3 "risk": 0.5}], "summary": ""}', "syntax"),
        ('{"objects": [{"id": 3, "risk": NaN, "reason": ""}], "summary": ""}', "nan"),
        ('{"objects": [{"id": 3, "risk": Infinity, "reason": ""}], "summary": ""}', "nan"),
        ('{"objects": [{"id": 3, "risk": "nan", "reason": ""}], "summary": ""}', "nan"),
        ('{"objects": [{"id": 3, "risk": -0.2, "reason": ""}], "summary": ""}', "range"),
        ('{"objects": [{"id": 3, "risk": 1.5, "reason": ""}], "summary": ""}', "range"),
        ('{"objects": [{"id": 3, "risk": 70, "reason": ""}], "summary": ""}', "range"),
        ('{"objects": [{"id": 99, "risk": 0.5, "reason": ""}], "summary": ""}', "unknown_id"),
        ('{"objects": [{"id": 3, "risk": true, "reason": ""}], "summary": ""}', "schema"),
        ('{"objects": [{"id": 3, "risk": null, "reason": ""}], "summary": ""}', "schema"),
        ('{"objects": [{"id": 3.5, "risk": 0.5, "reason": ""}], "summary": ""}', "schema"),
        ('{"objects": [{"id": "three", "risk": 0.5, "reason": ""}], "summary": ""}', "schema"),
        ('{"objects": [{"id": 3, "risk": 0.5, "reason": 42}], "summary": ""}', "schema"),
        ('{"objects": [{"risk": 0.5, "reason": ""}], "summary": ""}', "schema"),
        ('{"objects": {"3": 0.5}, "summary": ""}', "schema"),
        ('{"objects": [3, 7], "summary": ""}', "schema"),
        ('{"summary": "no objects key"}', "schema"),
        ("[1, 2, 3]", "no_json"),
    ],
)
def test_malformed_replies_are_rejected_with_their_kind(text, kind):
    assert _kind(text) == kind


def test_without_repair_only_a_bare_json_object_is_accepted():
    assert parse_reply(json.dumps(GOOD), IDS, ParseConfig(repair=False)).repairs == []
    assert _kind("Here: " + json.dumps(GOOD), repair=False) == "syntax"
    assert (
        _kind('{"objects": [{"id": 3, "risk": 1.0000001, "reason": ""}], "summary": ""}', repair=False)
        == "range"
    )


def test_reply_error_is_a_record():
    err = ReplyError("http", "HTTP 500", "Internal Server Error", status=500)
    assert err.to_dict() == {
        "kind": "http",
        "message": "HTTP 500",
        "raw_text": "Internal Server Error",
        "raw_chars": None,
        "status": 500,
        "attempts": 1,
    }
    with pytest.raises(ValueError, match="unknown ReplyError kind"):
        ReplyError("weird", "x")
    import pickle

    again = pickle.loads(pickle.dumps(err))
    assert again.kind == "http" and again.status == 500 and again.raw_text == "Internal Server Error"


# ------------------------------------------------------------------------------------------ labels
def test_label_ranks_by_risk_and_links_grounded_objects():
    objects = {
        3: obj(3, "car"),
        7: obj(7, "pedestrian", "CAM_FRONT_LEFT", cams=("CAM_FRONT_LEFT", "CAM_FRONT")),
    }
    text = json.dumps(
        {
            "objects": [{"id": 3, "risk": 0.3, "reason": "car"}, {"id": 7, "risk": 0.9, "reason": "ped"}],
            "summary": "s",
        }
    )
    parsed = parse_reply(text, objects.keys())
    label = build_label("r0/00005", parsed, objects, Provenance(teacher="vlm", raw_response=text))
    assert [o.object_id for o in label.objects] == [7, 3]
    assert [o.rank for o in label.objects] == [1, 2]
    assert label.frame_risk == 0.9
    assert label.objects[0].cls == "pedestrian"
    assert label.objects[0].cameras == ["CAM_FRONT_LEFT", "CAM_FRONT"]
    assert label.objects[0].box2d == {"CAM_FRONT_LEFT": [10.0, 20.0, 30.0, 50.0]}
    assert FrameLabel.model_validate_json(label.model_dump_json()) == label


def test_label_ties_keep_the_reply_order_and_empty_reply_gives_zero_risk():
    objects = {3: obj(3), 7: obj(7), 12: obj(12)}
    text = json.dumps(
        {
            "objects": [{"id": 12, "risk": 0.5, "reason": ""}, {"id": 3, "risk": 0.5, "reason": ""}],
            "summary": "",
        }
    )
    label = build_label("f", parse_reply(text, objects.keys()), objects, Provenance(teacher="vlm"))
    assert [o.object_id for o in label.objects] == [12, 3]  # 7 not mentioned: no entry
    empty = build_label(
        "f", parse_reply('{"objects": [], "summary": ""}', []), objects, Provenance(teacher="vlm")
    )
    assert empty.objects == [] and empty.frame_risk == 0.0


# ------------------------------------------------------------------------------------------ prompt + schema
def test_reply_schema_is_narrowed_to_the_frame():
    s = reply_json_schema([12, 3, 7], reason_max_chars=50, summary_max_chars=80)
    assert "$ref" not in json.dumps(s) and "$defs" not in s
    item = s["properties"]["objects"]["items"]
    assert item["properties"]["id"]["enum"] == [3, 7, 12]
    assert item["properties"]["risk"]["minimum"] == 0 and item["properties"]["risk"]["maximum"] == 1
    assert item["properties"]["reason"]["maxLength"] == 50
    assert s["properties"]["objects"]["maxItems"] == 3 and s["properties"]["objects"]["minItems"] == 1
    assert s["additionalProperties"] is False and item["additionalProperties"] is False
    assert list(item["properties"]) == ["id", "risk", "reason"]  # the order the model writes them in
    # the generic schema is the pydantic model's
    RiskReply.model_validate(GOOD)
    assert reply_json_schema()["required"] == ["objects", "summary"]


def test_template_loads_renders_and_hashes():
    assert "risk_rank_v1" in list_templates()
    t = load_template("risk_rank_v1")
    assert t.template_id == "risk_rank_v1" and len(t.prompt_hash) == 16
    lines = [object_line(obj(3, "pedestrian"), True), object_line(obj(7, camera="CAM_BACK"), False)]
    system, user = t.render(
        cameras=["CAM_FRONT"],
        object_lines=lines,
        ego_speed_mps=4.25,
        command="lane_follow",
        reason_max_chars=60,
        reply_schema="{}",
    )
    assert "JSON" in system
    assert '"id": 3, "class": "pedestrian"' in user and '"box": [10, 20, 30, 50]' in user
    assert '"id": 7' in user and user.count('"box"') == 1  # no box for a camera that is not shown
    assert "4.2 m/s" in user or "4.3 m/s" in user
    assert "{#" not in user and "### user" not in user
    with pytest.raises(PromptError, match="unknown prompt template"):
        load_template("risk_rank_v999")


def test_template_from_a_file_and_its_hash_follow_the_text(tmp_path):
    p = tmp_path / "mine_v1.jinja"
    p.write_text("### system\nsys\n### user\nobjects: {{ object_lines | length }}\n")
    t = load_template(str(p))
    assert t.template_id == "mine_v1"
    assert t.render(object_lines=[1, 2])[1] == "objects: 2"
    p2 = tmp_path / "mine_v2.jinja"
    p2.write_text("### system\nsys\n### user\nobjects: {{ object_lines | length }} !\n")
    assert load_template(str(p2)).prompt_hash != t.prompt_hash
    bad = tmp_path / "bad.jinja"
    bad.write_text("no sections here")
    with pytest.raises(PromptError, match="### system"):
        load_template(str(bad))


def test_select_objects_filters_by_shown_cameras_and_distance():
    objs = [
        obj(1, dist=30.0),
        obj(2, camera="CAM_BACK", dist=5.0),
        obj(3, camera="CAM_FRONT_LEFT", dist=8.0, cams=("CAM_FRONT_LEFT", "CAM_FRONT")),
        obj(4, dist=2.0),
        obj(4, dist=2.0),  # a duplicate id: listed once
    ]
    assert [o.object_id for o in select_objects(objs, ["CAM_FRONT"], 10, False)] == [4, 3, 1]
    assert [o.object_id for o in select_objects(objs, ["CAM_FRONT"], 2, False)] == [4, 3]
    assert [o.object_id for o in select_objects(objs, ["CAM_FRONT"], 10, True)] == [4, 2, 3, 1]


def test_object_line_handles_non_finite_values():
    o = GroundedObject(
        object_id=-1, cls="cone", camera="CAM_FRONT", box2d=(math.nan, 0, 1, 1), distance_m=math.inf
    )
    d = json.loads(object_line(o, True))
    assert d["id"] == -1 and "box" not in d and d["distance_m"] is None
