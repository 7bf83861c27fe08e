"""The student (riskdistill.models): configs, shapes, geometry, RiskHead gradients, losses, save/load,
the hook adapter. Synthetic observations on the bench2drive rig at 64x176 keep it fast."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from riskdistill.config import ConfigError
from riskdistill.contracts.batch import BEV_CHANNELS, Observation, Targets
from riskdistill.contracts.rig import RigPerturbation, load_rig, perturb_rig, resize_rig
from riskdistill.geometry import BevGrid
from riskdistill.models import (
    RiskHeadConfig,
    attach_risk_head,
    build_student,
    compute_risk_loss,
    count_parameters,
    get_head,
    list_heads,
    load_student,
    save_student,
    student_config,
)
from riskdistill.models.heads.risk import RiskLossConfig, risk_schedule_factor

torch.set_num_threads(1)
HW = (64, 176)
RIG = resize_rig(load_rig("bench2drive"), *HW)


def make_obs(b: int = 2, seed: int = 0, rig=RIG, hw=HW) -> Observation:
    g = torch.Generator().manual_seed(seed)
    n = len(rig.cameras)
    return Observation(
        images=torch.rand(b, n, 3, *hw, generator=g),
        camera_valid=torch.ones(b, n, dtype=torch.bool),
        K=torch.tensor(rig.K(), dtype=torch.float32)[None].repeat(b, 1, 1, 1),
        T_ego_from_cam=torch.tensor(rig.T_ego_from_cam(), dtype=torch.float32)[None].repeat(b, 1, 1, 1),
        ego_state=torch.rand(b, 4, generator=g) * torch.tensor([8.0, 1.0, 0.1, 0.2]),
        command=torch.randint(1, 7, (b,), generator=g),
        target_point=torch.rand(b, 2, generator=g) * torch.tensor([20.0, 4.0]),
    )


def make_targets(b: int = 2, seed: int = 0, hw: tuple[int, int] = (64, 64)) -> Targets:
    g = torch.Generator().manual_seed(seed + 100)
    wp = torch.cumsum(torch.rand(b, 6, 2, generator=g) * torch.tensor([3.0, 0.4]), dim=1)
    risk = torch.zeros(b, 1, *hw)
    for i in range(b):  # a risky blob per sample
        r, c = torch.randint(8, hw[0] - 8, (2,), generator=g).tolist()
        risk[i, 0, r - 3 : r + 3, c - 2 : c + 2] = 0.3 + 0.7 * torch.rand(1, generator=g).item()
    return Targets(
        future_waypoints=wp,
        future_yaw=torch.zeros(b, 6),
        future_valid=torch.ones(b, 6, dtype=torch.bool),
        bev_occupancy=(torch.rand(b, len(BEV_CHANNELS), *hw, generator=g) > 0.9).float(),
        risk_map=risk,
        plan_path=torch.stack([torch.arange(1, 21).float(), torch.zeros(20)], -1)[None].repeat(b, 1, 1),
        plan_speed_mps=torch.rand(b, 1, generator=g) * 8.0,
        plan_valid=torch.ones(b, 1, dtype=torch.bool),
        image_semantics=torch.randint(0, 4, (b, len(RIG.cameras), 16, 44), generator=g),
        image_depth_m=torch.rand(b, len(RIG.cameras), 16, 44, generator=g) * 60.0,
        image_valid=torch.ones(b, 1, dtype=torch.bool),
    )


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_student(student_config("tiny")).eval()


# ------------------------------------------------------------------------------------------ config
def test_presets_registry_and_strict_overrides() -> None:
    cfg = student_config("tiny", heads={"risk": {"enabled": False}})
    assert cfg.heads.risk.enabled is False and cfg.heads.planning.enabled
    assert cfg.bev_grid() == BevGrid.preset("tiny")
    assert student_config("base").bev_grid() == BevGrid.preset("base")
    assert cfg.target_names == ["future_trajectory", "expert_plan", "bev_occupancy"]
    assert student_config("tiny").target_names == [
        "future_trajectory",
        "expert_plan",
        "bev_occupancy",
        "risk_map",
    ]
    with pytest.raises(ValueError, match=r"valid presets: \['base', 'cpu', 'tiny'\]"):
        student_config("huge")
    with pytest.raises(ConfigError, match="enabeld"):
        student_config("tiny", heads={"risk": {"enabeld": False}})
    with pytest.raises(ConfigError, match="valid keys"):
        student_config("tiny", bakbone={"name": "resnet18"})
    with pytest.raises(ConfigError, match="risk_gated_features needs"):
        student_config("tiny", heads={"risk": {"enabled": False}}, risk_gated_features=True)
    with pytest.raises(ConfigError, match="risk_reads='lifted' needs"):
        student_config("tiny", heads={"risk": {"enabled": False}}, risk_reads="lifted")
    with pytest.raises(ConfigError, match="risk_reads"):
        student_config("tiny", risk_reads="backbone")
    with pytest.raises(ValueError, match="valid heads"):
        get_head("detection")
    assert {"occupancy", "planning", "risk"} <= set(list_heads())  # registry-wide: test_registries.py
    with pytest.raises(ConfigError, match="view"):
        student_config("tiny", view={"type": "ipm"})


# ------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("view", ["deformable", "lss"])
def test_output_shapes_both_view_transforms(view: str) -> None:
    torch.manual_seed(0)
    student = build_student(student_config("tiny", view={"type": view}))
    obs = make_obs(2)
    out = student(obs)
    assert out["bev"].shape == (2, 64, 32, 32)
    assert out["waypoints"].shape == (2, 6, 2)
    assert out["occupancy"].shape == (2, 5, 64, 64)
    assert out["risk"].shape == (2, 1, 64, 64)
    risk = out["risk"].detach()
    assert float(risk.min()) >= 0.0 and float(risk.max()) <= 1.0
    assert all(torch.isfinite(v).all() for v in out.values())
    # uint8 images give the same result as float images in [0, 1]
    u8 = replace(obs, images=(obs.images * 255).round().to(torch.uint8))
    f = replace(obs, images=u8.images.float() / 255.0)
    student.eval()
    with torch.no_grad():
        torch.testing.assert_close(student(u8)["waypoints"], student(f)["waypoints"])


def test_with_risk_false_skips_the_risk_head(tiny) -> None:
    obs = make_obs(1)
    calls = []
    h = tiny.heads["risk"].register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            out = tiny(obs, with_risk=False)
            assert "risk" not in out and not calls
            full = tiny(obs)
            assert "risk" in full and calls
    finally:
        h.remove()
    torch.testing.assert_close(out["waypoints"], full["waypoints"])
    baseline = build_student(student_config("tiny", heads={"risk": {"enabled": False}}))
    assert "risk" not in baseline(obs)
    assert not any(k.startswith("heads.risk") for k in baseline.state_dict())
    with pytest.raises(ValueError, match="no RiskHead"):
        baseline(obs, with_risk=True)


def test_base_preset_builds_at_reduced_size() -> None:
    cfg = student_config("base", view={"bev_hw": (50, 50)}, image_hw=(64, 176))
    student = build_student(cfg).eval()
    n = count_parameters(build_student(student_config("base")))
    assert 40e6 < n < 65e6, n
    with torch.no_grad():
        out = student(make_obs(1))
    assert out["bev"].shape == (1, 256, 50, 50)
    assert out["risk"].shape == (1, 1, 200, 200) and out["occupancy"].shape == (1, 5, 200, 200)
    assert out["waypoints"].shape == (1, 6, 2)


# ------------------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize("view", ["deformable", "lss"])
def test_changed_rig_changes_the_bev(view: str) -> None:
    torch.manual_seed(0)
    student = build_student(student_config("tiny", view={"type": view})).eval()
    obs = make_obs(1)
    moved = perturb_rig(RIG, RigPerturbation(yaw_delta_deg=20.0, height_delta_m=0.3))
    obs2 = replace(obs, K=make_obs(1, rig=moved).K, T_ego_from_cam=make_obs(1, rig=moved).T_ego_from_cam)
    with torch.no_grad():
        a, b = student(obs)["bev"], student(obs2)["bev"]
        again = student(obs)["bev"]
    torch.testing.assert_close(a, again)
    assert float((a - b).abs().mean()) > 1e-3 * float(a.abs().mean())


def test_rebatched_sampling_equals_dense() -> None:
    """BEV re-batching (each camera samples only for the queries it sees) changes cost, not results."""
    torch.manual_seed(0)
    student = build_student(student_config("tiny"))
    obs = make_obs(2)
    obs.camera_valid[1, 2] = False
    moved = perturb_rig(RIG, RigPerturbation(yaw_delta_deg=10.0))
    obs.T_ego_from_cam[1] = torch.tensor(moved.T_ego_from_cam(), dtype=torch.float32)
    assert student.view_transform.rebatch
    fast = student(obs)["bev"]
    fast.square().mean().backward()
    g_fast = student.view_transform.layers[0].offsets.weight.grad.clone()
    student.zero_grad()
    student.view_transform.rebatch = False
    dense = student(obs)["bev"]
    dense.square().mean().backward()
    torch.testing.assert_close(fast, dense, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        g_fast, student.view_transform.layers[0].offsets.weight.grad, atol=1e-6, rtol=1e-4
    )


def test_dropped_camera_contributes_nothing(tiny) -> None:
    obs = make_obs(1)
    drop = replace(obs, camera_valid=torch.tensor([[True, True, True, False, True, True]]))
    noisy = replace(drop, images=drop.images.clone())
    noisy.images[0, 3] = torch.rand_like(noisy.images[0, 3])
    with torch.no_grad():
        a, b, full = tiny(drop)["bev"], tiny(noisy)["bev"], tiny(obs)["bev"]
    torch.testing.assert_close(a, b)  # the dropped camera's pixels do not matter
    assert not torch.allclose(a, full)


def test_projection_matches_geometry_module() -> None:
    """A point straight ahead of CAM_FRONT lands at the image centre column."""
    from riskdistill.models.view_transforms import project_to_images

    obs = make_obs(1)
    pts = torch.tensor([[20.0, 0.0, 1.6], [-20.0, 0.0, 1.6]])
    grid, valid = project_to_images(pts, obs.K, obs.T_ego_from_cam, HW, obs.camera_valid)
    front = RIG.camera_names.index("CAM_FRONT")
    back = RIG.camera_names.index("CAM_BACK")
    assert valid[0, front, 0] and not valid[0, front, 1] and valid[0, back, 1]
    torch.testing.assert_close(grid[0, front, 0], torch.zeros(2), atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------ losses
def test_risk_loss_gradient_reaches_bev_encoder_and_backbone() -> None:
    torch.manual_seed(0)
    student = build_student(student_config("tiny"))
    obs, tg = make_obs(2), make_targets(2)
    losses = student.losses(student(obs), tg)
    assert set(losses) == {"planning", "occupancy", "risk", "total"}
    losses["risk"].backward()

    def grad_norm(prefix: str) -> float:
        return sum(
            float(p.grad.abs().sum())
            for n, p in student.named_parameters()
            if n.startswith(prefix) and p.grad is not None
        )

    assert grad_norm("backbone.body") > 0.0
    assert grad_norm("view_transform") > 0.0
    assert grad_norm("bev_encoder") > 0.0
    assert grad_norm("heads.planning") == 0.0  # the risk loss alone does not touch the planner


def test_losses_need_their_targets(tiny) -> None:
    out = tiny(make_obs(1))
    tg = make_targets(1)
    with pytest.raises(ValueError, match=r"Targets.risk_map.*risk_map"):
        tiny.losses(out, replace(tg, risk_map=None))
    with pytest.raises(ValueError, match="future_trajectory"):
        tiny.losses(out, replace(tg, future_waypoints=None))
    no_risk = {k: v for k, v in out.items() if k != "risk"}
    with pytest.raises(KeyError, match="with_risk=False"):
        tiny.losses(no_risk, tg)
    m = tiny.metrics(no_risk, tg)  # metrics skip what is missing
    assert "risk_l1" not in m and "planning_l1_m" in m and "occupancy_iou" in m


def test_planning_loss_is_masked_by_future_valid(tiny) -> None:
    out = {"waypoints": torch.zeros(1, 6, 2)}
    tg = Targets(
        future_waypoints=torch.tensor([[[1.0, 1.0]] * 3 + [[100.0, 100.0]] * 3]),
        future_valid=torch.tensor([[True] * 3 + [False] * 3]),
    )
    assert float(tiny.heads["planning"].loss(out, tg)) == pytest.approx(1.0)
    assert tiny.heads["planning"].metrics(out, tg)["planning_l2_m"] == pytest.approx(2**0.5)


@pytest.mark.parametrize("kind", ["l1", "mse", "kl", "focal"])
def test_risk_loss_options_prefer_the_target(kind: str) -> None:
    tg = make_targets(2).risk_map
    cfg = RiskLossConfig(type=kind)
    good = compute_risk_loss(tg.clamp(0.02, 0.98), tg, cfg)
    flat = compute_risk_loss(torch.full_like(tg, 0.02), tg, cfg)
    wrong = compute_risk_loss(torch.roll(tg, 20, dims=-1).clamp(0.02, 0.98), tg, cfg)
    assert float(good) < float(flat) and float(good) < float(wrong)


def test_risk_foreground_weighting_and_schedule() -> None:
    tg = make_targets(1).risk_map
    zeros = torch.zeros_like(tg)
    plain = compute_risk_loss(zeros, tg, RiskLossConfig(fg_share=None))
    weighted = compute_risk_loss(zeros, tg, RiskLossConfig(fg_share=0.5))
    assert float(plain) == pytest.approx(float(tg.mean()), rel=1e-5)  # the paper's plain L1
    fg = tg > 0.05
    assert float(weighted) == pytest.approx(0.5 * float(tg[fg].mean()), rel=1e-5)
    assert float(weighted) > 20 * float(plain)  # predicting "no risk anywhere" is no longer cheap
    # no foreground at all: the plain mean
    assert float(compute_risk_loss(torch.full_like(tg, 0.2), torch.zeros_like(tg), RiskLossConfig())) == (
        pytest.approx(0.2)
    )
    cfg = RiskLossConfig(schedule="linear_warmup", warmup_steps=10)
    assert [risk_schedule_factor(cfg, s) for s in (0, 4, 9, 50)] == [0.1, 0.5, 1.0, 1.0]
    assert risk_schedule_factor(cfg, None) == 1.0
    assert float(compute_risk_loss(zeros, tg, cfg, step=4)) == pytest.approx(
        0.5 * float(compute_risk_loss(zeros, tg, cfg)), rel=1e-6
    )


def test_risk_gated_features_feed_risk_into_planning() -> None:
    torch.manual_seed(0)
    student = build_student(student_config("tiny", risk_gated_features=True))
    obs, tg = make_obs(2), make_targets(2)
    out = student(obs, with_risk=False)  # computed for the gate, not returned
    assert "risk" not in out
    losses = student.losses(student(obs), tg)
    losses["planning"].backward()
    assert student.risk_gate.weight.grad is not None and float(student.risk_gate.weight.grad.abs().sum()) > 0


def test_a_risk_head_attached_before_the_bev_encoder_shapes_only_what_lies_below_it() -> None:
    """``risk_reads="lifted"``: the risk loss reaches the view transform and the backbone but not the BEV
    encoder; attached to the shared BEV (the default) it reaches the BEV encoder too. The driving outputs
    are the same function of the weights either way."""
    torch.manual_seed(0)
    obs, tg = make_obs(2), make_targets(2)
    grads = {}
    for where in ("bev", "lifted"):
        torch.manual_seed(0)
        student = build_student(student_config("tiny", risk_reads=where))
        out = student(obs)
        student.losses(out, tg)["risk"].backward()
        grads[where] = {
            part: sum(
                float(p.grad.abs().sum()) for p in getattr(student, part).parameters() if p.grad is not None
            )
            for part in ("bev_encoder", "view_transform")
        }
        grads[where]["waypoints"] = out["waypoints"].detach()
    assert grads["bev"]["bev_encoder"] > 0 and grads["lifted"]["bev_encoder"] == 0
    assert grads["lifted"]["view_transform"] > 0
    torch.testing.assert_close(grads["bev"]["waypoints"], grads["lifted"]["waypoints"])


def test_temporal_fusion_uses_previous_frame() -> None:
    torch.manual_seed(0)
    student = build_student(student_config("tiny", temporal={"enabled": True})).eval()
    obs = make_obs(1)
    with torch.no_grad():
        nn.init.normal_(student.temporal.mix.weight, std=0.05)
        base = student(obs)["bev"]
        prev = replace(obs, prev_images=torch.rand(1, 1, 6, 3, *HW), prev_valid=torch.tensor([[True]]))
        with_prev = student(prev)["bev"]
        invalid = student(replace(prev, prev_valid=torch.tensor([[False]])))["bev"]
    assert not torch.allclose(base, with_prev)
    torch.testing.assert_close(base, invalid)


# ------------------------------------------------------------------------------------------ io
def test_save_load_identical_outputs(tiny, tmp_path) -> None:
    obs = make_obs(1, seed=5)
    with torch.no_grad():
        ref = tiny(obs)
    save_student(tiny, tmp_path / "ckpt")
    doc = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert doc["model"]["preset"] == "tiny"
    loaded = load_student(tmp_path / "ckpt")
    with torch.no_grad():
        out = loaded(obs)
    for k in ref:
        assert torch.equal(ref[k], out[k]), k
    # other keys in config.json (the training engine's) are kept and ignored
    doc["train"] = {"lr": 1e-3}
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(doc))
    save_student(tiny, tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["train"] == {"lr": 1e-3}
    load_student(tmp_path / "ckpt")
    # weights of another architecture are refused, naming the file
    other = build_student(student_config("tiny", heads={"risk": {"enabled": False}}))
    save_student(other, tmp_path / "other")
    (tmp_path / "other" / "config.json").write_text((tmp_path / "ckpt" / "config.json").read_text())
    with pytest.raises(ValueError, match=r"other/model\.safetensors.*missing \['heads\.risk"):
        load_student(tmp_path / "other")
    with pytest.raises(ConfigError, match=r"config\.json"):
        load_student(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------ adapter
class _ToTokens(nn.Module):
    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        return bev.flatten(2).transpose(1, 2)  # [B, C, H, W] -> [B, H*W, C]


class ToyBevModel(nn.Module):
    """A user's own BEV model: a flat image encoder to a 16x16 BEV map (or BEV tokens), a planner on top."""

    def __init__(self, tokens: bool = False):
        super().__init__()
        self.tokens = tokens
        self.encoder = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU())
        self.bev_neck = nn.Conv2d(16, 24, 1)
        self.bev_tokens = _ToTokens()
        self.planner = nn.Linear(24, 12)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        bev = self.bev_neck(nn.functional.adaptive_avg_pool2d(self.encoder(image), (16, 16)))
        feat = self.bev_tokens(bev).mean(1) if self.tokens else bev.mean((2, 3))
        return self.planner(feat).view(-1, 6, 2)


@pytest.mark.parametrize("layout", ["bchw", "tokens"])
def test_hook_adapter_on_a_foreign_bev_model(layout: str) -> None:
    torch.manual_seed(0)
    model = ToyBevModel(tokens=layout == "tokens")
    grid = BevGrid.centered(32.0, 32.0, 1.0)
    if layout == "tokens":  # "BEV re-batching": [B, H*W, C] tokens -> [B, C, H, W]
        adapter = attach_risk_head(
            model, "bev_tokens", {"channels": 16}, grid, in_channels=24, layout="tokens", bev_hw=(16, 16)
        )
    else:
        adapter = attach_risk_head(model, "bev_neck", RiskHeadConfig(channels=16), grid)  # C read: 24
        assert adapter.head.in_channels == 24
    img = torch.rand(2, 3, 64, 64)
    plan, risk = adapter(img)
    assert plan.shape == (2, 6, 2) and risk.shape == (2, 1, 32, 32)
    torch.testing.assert_close(
        adapter.features, model.bev_neck(nn.functional.adaptive_avg_pool2d(model.encoder(img), (16, 16)))
    )
    target = torch.zeros_like(risk)
    target[:, :, 10:14, 10:14] = 1.0
    adapter.loss(risk, target).backward()
    enc = model.encoder[0].weight.grad
    assert enc is not None and float(enc.abs().sum()) > 0.0  # risk gradients reach the user's model
    assert all(p.grad is not None for p in adapter.head.parameters())
    assert "risk_l1" in adapter.metrics(risk.detach(), target)
    adapter.remove()
    adapter._features = None
    model(img)
    with pytest.raises(RuntimeError, match="no features captured"):
        adapter.risk()
    with pytest.raises(ValueError, match=r"no submodule 'bev'.*submodules"):
        attach_risk_head(model, "bev", None, grid, in_channels=24)
    with pytest.raises(ValueError, match="pass in_channels"):
        attach_risk_head(model, "bev_tokens", None, grid, layout="tokens", bev_hw=(16, 16))
