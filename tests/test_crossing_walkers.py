"""Pedestrians on the carriageway for training data: crossing walkers in the simulator and the recording, and
the occupancy loss that weights pedestrians on the drivable area (results/pedestrians)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from conftest import TINY_EVERY, TINY_HW
from riskdistill.contracts.batch import BEV_CHANNELS, Targets
from riskdistill.data import RecordedDataset, record_suite
from riskdistill.geometry import BevGrid, points_in_polygon
from riskdistill.models.heads.occupancy import OccupancyHead, OccupancyHeadConfig
from riskdistill.sim.actors import Behavior
from riskdistill.sim.scenarios import build_scenario
from riskdistill.sim.scenarios.background import CROSSING_AT_ROUTE_M
from riskdistill.sim.suites import RouteSpec, Suite
from riskdistill.types import ActorClass

ROUTES = [
    ("Accident", 100000, {"family": "straight"}),
    ("PedestrianCrossing", 3, None),
    ("HardBreakRoute", 5, None),
]


def test_points_in_polygon_square_and_concave() -> None:
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], dtype=float)
    pts = np.array([[1, 1], [3, 1], [-0.1, 1], [1.9, 1.9]], dtype=float)
    assert points_in_polygon(pts, square).tolist() == [True, False, False, True]
    ell = np.array([[0, 0], [3, 0], [3, 1], [1, 1], [1, 3], [0, 3]], dtype=float)  # an L
    assert points_in_polygon(np.array([[0.5, 2.5], [2, 2], [2, 0.5]]), ell).tolist() == [True, False, True]


def _walkers(inst) -> list[int]:
    a = inst.world.actors
    return [j for j in range(a.n) if a.behavior[j] == Behavior.WALKER]


@pytest.mark.parametrize(("scenario", "seed", "layout"), ROUTES)
def test_zero_crossing_walkers_leave_the_route_unchanged(scenario: str, seed: int, layout) -> None:
    plain, zero = (
        build_scenario(scenario, seed, layout),
        build_scenario(scenario, seed, layout, crossing_walkers=0),
    )
    a, b = plain.world.actors, zero.world.actors
    assert a.n == b.n
    for key in ("x", "y", "yaw", "speed", "behavior", "path_id"):
        np.testing.assert_array_equal(getattr(a, key)[: a.n], getattr(b, key)[: b.n])


@pytest.mark.parametrize(("scenario", "seed", "layout"), ROUTES)
def test_crossing_walkers_cross_the_route_from_sidewalk_to_sidewalk(scenario: str, seed: int, layout) -> None:
    plain = build_scenario(scenario, seed, layout)
    inst = build_scenario(scenario, seed, layout, crossing_walkers=4)
    again = build_scenario(scenario, seed, layout, crossing_walkers=4)
    n0, a = plain.world.actors.n, inst.world.actors
    added = list(range(n0, a.n))
    assert 1 <= len(added) <= 4, "a road with sidewalks on both sides gets crossing walkers"
    np.testing.assert_array_equal(a.x[: a.n], again.world.actors.x[: again.world.actors.n])  # deterministic
    np.testing.assert_array_equal(a.x[:n0], plain.world.actors.x[:n0])  # the rest of the route as before
    route, sidewalks, world = inst.route.path, inst.world.map.sidewalks, inst.world
    for j in added:
        assert a.behavior[j] == Behavior.WALKER and a.cls[j] == ActorClass.PEDESTRIAN and not a.hold[j]
        assert a.speed[j] > 0.9
        length = float(world.paths.lengths()[a.path_id[j]])
        pts = world.paths.interp(np.full(201, a.path_id[j]), np.linspace(0.0, length, 201))
        lat = np.array([route.project(p)[1] for p in pts])
        s_cross = route.project(pts[np.argmin(np.abs(lat))])[0]
        assert lat.min() < -1.0 and lat.max() > 1.0, "the path crosses the route"
        assert CROSSING_AT_ROUTE_M[0] - 15.0 < s_cross < CROSSING_AT_ROUTE_M[1] + 15.0
        for end in (pts[0], pts[-1]):  # starts and stops on a sidewalk, never on the road
            assert any(points_in_polygon(end[None], np.asarray(sw, dtype=float))[0] for sw in sidewalks)


def test_a_recording_with_crossing_walkers_has_pedestrians_on_the_road(tmp_path: Path) -> None:
    suite = Suite(name="cw", routes=[RouteSpec(route_id="r", scenario="HardBreakRoute", seed=5)])
    kw = {
        "image_hw": TINY_HW,
        "every_n_steps": TINY_EVERY,
        "workers": 1,
        "show_progress": False,
        "max_steps": 150,
    }
    res = record_suite(suite, "bench2drive", tmp_path / "cw", crossing_walkers=4, **kw)
    assert res.n_routes == 1
    ds = RecordedDataset(tmp_path / "cw")
    assert ds.manifest["settings"]["crossing_walkers"] == 4
    n_ped = max(
        int((ds.frame(i).annotation["actor_class"] == ActorClass.PEDESTRIAN).sum()) for i in range(len(ds))
    )
    plain = build_scenario("HardBreakRoute", 5).world.actors
    n_plain = int((plain.cls[: plain.n] == ActorClass.PEDESTRIAN).sum())
    assert n_ped > n_plain
    with pytest.raises(ValueError, match="other parameters"):  # resuming with another count is refused
        record_suite(suite, "bench2drive", tmp_path / "cw", crossing_walkers=0, **kw)


# ------------------------------------------------------------------------------------------ the loss
def _targets(vru_on_road: bool) -> Targets:
    occ = torch.zeros(1, len(BEV_CHANNELS), 64, 64)
    vru, road = BEV_CHANNELS.index("vulnerable"), BEV_CHANNELS.index("drivable")
    occ[0, road, :, 20:40] = 1.0
    occ[0, vru, 10, 30 if vru_on_road else 5] = 1.0
    return Targets(bev_occupancy=occ)


def _head(**kw) -> OccupancyHead:
    cfg = OccupancyHeadConfig(channel_pos_weight=(8.0, 30.0, 15.0, 1.0, 3.0), **kw)
    return OccupancyHead(cfg, bev_channels=8, bev_hw=(32, 32), grid=BevGrid.preset("tiny"))


def test_vulnerable_on_road_weight_scales_the_gradient_of_a_pedestrian_on_the_road_only() -> None:
    plain, weighted = _head(), _head(vulnerable_on_road_weight=5.0)
    vru = BEV_CHANNELS.index("vulnerable")
    for on_road in (True, False):
        grads = []
        for head in (plain, weighted):
            logits = torch.zeros(1, len(BEV_CHANNELS), 64, 64, requires_grad=True)
            head.loss({"occupancy": logits}, _targets(on_road)).backward()
            grads.append(logits.grad)
        col = 30 if on_road else 5
        ratio = float(grads[1][0, vru, 10, col] / grads[0][0, vru, 10, col])
        assert ratio == pytest.approx(5.0 if on_road else 1.0)
        other = torch.ones_like(grads[0], dtype=torch.bool)
        other[0, vru, 10, col] = False
        torch.testing.assert_close(grads[1][other], grads[0][other])  # every other cell as before


def test_vulnerable_on_road_weight_is_checked() -> None:
    with pytest.raises(ValidationError, match="vulnerable_on_road_weight"):
        OccupancyHeadConfig(loss="focal", vulnerable_on_road_weight=3.0)
    with pytest.raises(ValidationError, match="vulnerable_on_road_weight"):
        OccupancyHeadConfig(vulnerable_on_road_weight=0.5)
