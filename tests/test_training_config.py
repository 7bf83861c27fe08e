"""TrainConfig: validation, JSON + dotted overrides, run types, drift detection, schedule, state storage."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from riskdistill.config import ConfigError, parse_override
from riskdistill.models import StudentConfig
from riskdistill.training import RESUME_ALLOWED, TrainConfig, apply_overrides, load_train_config
from riskdistill.training.checkpoint import capture_rng, load_state, restore_rng, save_state
from riskdistill.training.config import config_drift
from riskdistill.training.engine import lr_factor

DATA = {"data": {"root": "/some/data"}}


def test_defaults_round_trip_and_presets() -> None:
    cfg = load_train_config(base=DATA)
    assert cfg.model.preset == "tiny" and cfg.risk_targets == "teacher" and cfg.model.heads.risk.enabled
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.data.label_dir() == Path("/some/data/labels/risk")
    assert cfg.image_hw == tuple(cfg.model.image_hw) and cfg.cameras is None
    base = load_train_config(base={**DATA, "model": {"preset": "base"}})
    assert base.model.preset == "base" and base.model.channels == 256
    assert TrainConfig.from_dict(base.to_dict()) == base
    # a partial model section: preset + nested overrides
    c = load_train_config(base={**DATA, "model": {"heads": {"risk": {"weight": 3.0}}}})
    assert c.model.heads.risk.weight == 3.0 and c.model.preset == "tiny"
    # a complete custom student (not a preset) round-trips too
    custom = TrainConfig(
        data=cfg.data, model=StudentConfig.model_validate({**cfg.model.to_dict(), "preset": "mine"})
    )
    assert TrainConfig.from_dict(custom.to_dict()) == custom and custom.model.preset == "mine"


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['optimzer'\].*'optimizer'"):
        TrainConfig.from_dict({**DATA, "optimzer": {"lr": 1.0}})
    with pytest.raises(ConfigError, match=r"\['bach_size'\].*'batch_size'"):
        TrainConfig.from_dict({"data": {"root": "x", "bach_size": 3}})
    with pytest.raises(ConfigError, match=r"\['wieght'\].*'weight'"):
        load_train_config(base=DATA, overrides=["model.heads.risk.wieght=2"])
    with pytest.raises(ConfigError, match=r"unknown student preset 'huge'.*'base', 'cpu', 'tiny'"):
        load_train_config(base={**DATA, "model": {"preset": "huge"}})
    with pytest.raises(ConfigError, match="data"):
        TrainConfig.from_dict({})  # the data set is required
    with pytest.raises(ConfigError, match=r"init_weights_prefixes.*needs a prefix to copy"):
        load_train_config(base=DATA, overrides=['init_weights_prefixes=["!heads.planning.out."]'])
    cfg = load_train_config(base=DATA, overrides=['init_weights_prefixes=["heads.", "!heads.planning.out."]'])
    assert cfg.init_weights_prefixes == ["heads.", "!heads.planning.out."]


def test_overrides_parse_json_values_and_apply_in_order(tmp_path: Path) -> None:
    assert parse_override("model.heads.risk.weight=2.0") == (["model", "heads", "risk", "weight"], 2.0)
    assert parse_override("data.image_hw=[32, 88]") == (["data", "image_hw"], [32, 88])
    assert parse_override("data.labels=/x/y=z") == (["data", "labels"], "/x/y=z")
    assert parse_override("schedule.total_steps=null") == (["schedule", "total_steps"], None)
    assert apply_overrides({"a": {"b": 1}}, ["a.c=true", 'd="s"']) == {"a": {"b": 1, "c": True}, "d": "s"}

    path = tmp_path / "train.json"
    path.write_text(
        json.dumps({"data": {"root": "/file", "batch_size": 3}, "optimizer": {"lr": 0.5}, "seed": 4})
    )
    cfg = load_train_config(
        path, overrides=["model.heads.risk.weight=2.0", "seed=9"], base={"data": {"root": "/cli"}}
    )
    assert cfg.data.root == "/cli" and cfg.data.batch_size == 3  # file < base (command line)
    assert cfg.optimizer.lr == 0.5 and cfg.seed == 9  # --set wins
    assert cfg.model.heads.risk.weight == 2.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr", "bad override 'optimizer.lr': expected key.sub.key=value"),
        ("=3", "bad override"),
        ("optimizer..lr=3", "bad override"),
        ("data.root.x=1", "'data.root' is a value"),
        ("optimizer.lr=fast", "lr"),
        ("optimizer.lr=-1", "greater than 0"),
        ("risk_targets=vlm", "risk_targets"),
    ],
)
def test_bad_overrides_are_clear_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_train_config(base=DATA, overrides=[override])


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_train_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json"):
        load_train_config(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"data": {"root": "x"}, "max_step": 3}))
    with pytest.raises(ConfigError, match=r"(?s)wrong\.json.*max_step.*max_steps"):
        load_train_config(wrong)


def test_risk_modes_switch_the_risk_head() -> None:
    off = load_train_config(base={**DATA, "risk_targets": "off"})
    assert not off.model.heads.risk.enabled and "risk_map" not in off.model.target_names
    on = load_train_config(base={**DATA, "risk_targets": "shuffled"})
    assert on.model.heads.risk.enabled and "risk_map" in on.model.target_names
    # baseline and RSD differ only in the RiskHead switch and the targets
    drift = config_drift(off.to_dict(), load_train_config(base=DATA).to_dict())
    assert set(drift) == {"model.heads.risk.enabled", "risk_targets"}
    with pytest.raises(ConfigError, match=r"risk_targets='off'.*enabled=false"):
        load_train_config(
            base={**DATA, "risk_targets": "off", "model": {"heads": {"risk": {"enabled": True}}}}
        )
    with pytest.raises(ConfigError, match="enabled=true"):
        load_train_config(base={**DATA, "model": {"heads": {"risk": {"enabled": False}}}})
    with pytest.raises(ConfigError, match="image_hw"):
        load_train_config(base={"data": {"root": "x", "image_hw": [10, 20]}})


def test_config_drift_lists_every_differing_key() -> None:
    a = load_train_config(base=DATA).to_dict()
    b = load_train_config(
        base=DATA, overrides=["optimizer.lr=1e-3", "data.num_workers=3", "seed=2"]
    ).to_dict()
    drift = config_drift(a, b)
    assert set(drift) == {"optimizer.lr", "data.num_workers", "seed"}
    assert drift["seed"] == (0, 2)
    assert "data.num_workers" in RESUME_ALLOWED and "max_steps" in RESUME_ALLOWED
    assert "seed" not in RESUME_ALLOWED and "optimizer.lr" not in RESUME_ALLOWED


def test_lr_schedule_warmup_then_cosine() -> None:
    f = [lr_factor(k, 4, 20, 0.1) for k in range(25)]
    assert f[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert f[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[4:]))  # non-increasing after warm-up
    assert f[20] == pytest.approx(0.1) and f[24] == pytest.approx(0.1)
    assert f[12] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(0, 0, 10, 0.0) == 1.0


def test_optimizer_state_round_trips_without_pickle(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.9))
    for _ in range(3):
        model(torch.randn(5, 3)).square().sum().backward()
        opt.step()
    state = {"opt": opt.state_dict(), "odd": {1: (2.0, float("nan")), "s": [None, True]}}
    save_state(tmp_path, "opt", state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opt.json", "opt.safetensors"]
    back = load_state(tmp_path, "opt")
    assert back["odd"][1][0] == 2.0 and math.isnan(back["odd"][1][1]) and back["odd"]["s"] == [None, True]
    fresh = torch.optim.AdamW(model.parameters(), lr=1.0)
    fresh.load_state_dict(back["opt"])
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k, v in a["state"].items():
        for name, t in v.items():
            assert torch.equal(t, b["state"][k][name]), (k, name)


def test_rng_states_restore_the_same_draws() -> None:
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    torch.rand(2)
    np.random.normal()  # leaves a cached gaussian
    state = capture_rng()
    want = (torch.rand(3), np.random.rand(3), np.random.normal(), random.random())
    torch.rand(7)
    np.random.rand(5)
    random.random()
    restore_rng(state)
    got = (torch.rand(3), np.random.rand(3), np.random.normal(), random.random())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1])
    assert want[2] == got[2] and want[3] == got[3]
