"""Counterfactual conflict geometry (teacher/conflict.py): box gaps, the route-driving ego, actor tracks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import Polygon

from riskdistill.geometry import box_corners_2d
from riskdistill.teacher.conflict import (
    ConflictParams,
    Scene,
    actor_tracks,
    box_gap,
    compute_conflicts,
    ego_plan,
)

P = ConflictParams()
ROUTE = np.stack([np.arange(151.0), np.zeros(151)], axis=1)


def _scene(**kw) -> Scene:
    base = {
        "ego_speed_mps": 0.0,
        "center_xy": np.zeros((0, 2)),
        "size_lw": np.zeros((0, 2)),
        "yaw": np.zeros(0),
        "velocity_xy": np.zeros((0, 2)),
        "route_xy": ROUTE,
        "route_limit_mps": np.full(151, 10.0),
    }
    return Scene(**(base | kw))


def test_box_gap_equals_the_polygon_distance() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        c = rng.uniform(-6, 6, (2, 2))
        yaw = rng.uniform(-np.pi, np.pi, 2)
        lw = rng.uniform(0.3, 5.0, (2, 2))
        polys = [Polygon(box_corners_2d(c[k], yaw[k], lw[k, 0], lw[k, 1])) for k in range(2)]
        want = polys[0].distance(polys[1])
        got = box_gap(
            c[0, 0], c[0, 1], math.cos(yaw[0]), math.sin(yaw[0]), lw[0, 0] / 2, lw[0, 1] / 2,
            c[1, 0], c[1, 1], math.cos(yaw[1]), math.sin(yaw[1]), lw[1, 0] / 2, lw[1, 1] / 2,
        )  # fmt: skip
        assert got == pytest.approx(want, abs=1e-9)


def test_the_counterfactual_ego_accelerates_to_the_limit_and_obeys_curves_and_red_lights() -> None:
    plan = ego_plan(_scene(ego_speed_mps=2.0), P)
    assert plan.v[0] == 2.0 and np.all(np.diff(plan.v) >= -1e-9)
    k = int(np.searchsorted(plan.t, 2.0))
    assert plan.v[k] == pytest.approx(2.0 + P.accel_mps2 * 2.0)
    assert plan.v[-1] == pytest.approx(10.0)  # the route's speed limit
    # a tight quarter circle (radius 12 m) after 30 m: slows to about sqrt(a_lat R) = 6 m/s in it
    s = np.arange(151.0)
    th = np.clip((s - 30.0) / 12.0, 0.0, np.pi / 2)
    xy = np.stack([np.where(s < 30, s, 30 + 12 * np.sin(th)), np.where(s < 30, 0, 12 * (1 - np.cos(th)))], 1)
    tail = s > 30 + 12 * np.pi / 2
    xy[tail] = np.stack([np.full(tail.sum(), 42.0), 12.0 + s[tail] - 30 - 12 * np.pi / 2], 1)
    plan = ego_plan(_scene(ego_speed_mps=10.0, route_xy=xy, route_limit_mps=np.full(151, 15.0)), P)
    in_curve = (plan.s > 33.0) & (plan.s < 45.0)
    assert in_curve.any() and plan.v[in_curve].max() < 7.0
    assert plan.heading[-1] == pytest.approx(np.pi / 2, abs=0.05)
    # a red light 20 m ahead of the front bumper: the front stops at the line
    plan = ego_plan(_scene(ego_speed_mps=8.0, stop_distance_m=20.0), P)
    assert plan.v[-1] == pytest.approx(0.0, abs=0.05)
    assert 19.0 <= plan.s[-1] <= 20.0 + 1e-6  # the front travels as far as the rear axle


def test_a_route_of_a_few_points_near_its_end_still_gives_a_plan() -> None:
    """Near the end of a route only 2-4 route points are left: the curve smoothing keeps their length
    (it used to return 5 values and fail 140 of 26,200 training frames)."""
    for n in (2, 3, 4):
        xy = np.stack([np.arange(n) * 3.0, np.zeros(n)], 1)
        plan = ego_plan(_scene(ego_speed_mps=5.0, route_xy=xy, route_limit_mps=np.full(n, 10.0)), P)
        assert np.all(np.isfinite(plan.v)) and plan.s[-1] <= 3.0 * (n - 1) + 1e-6


def test_a_lateral_offset_fades_back_to_the_route() -> None:
    route = ROUTE - np.array([0.0, 3.0])  # the ego is 3 m left of its route (overtaking)
    plan = ego_plan(_scene(ego_speed_mps=12.0, route_xy=route, route_limit_mps=np.full(151, 12.0)), P)
    assert plan.xy[0, 1] == pytest.approx(0.0, abs=1e-6)
    k = int(np.argmin(np.abs(plan.s - 30.0)))
    assert plan.xy[k, 1] == pytest.approx(-3.0 + 3.0 * (1 - plan.s[k] / P.offset_return_m), abs=0.05)
    assert plan.xy[-1, 1] == pytest.approx(-3.0, abs=1e-6)  # 60 m on: back on the route


def test_actors_follow_paths_brake_and_wait_for_their_release() -> None:
    plan = ego_plan(_scene(ego_speed_mps=5.0), P)
    path = np.stack([np.full(32, 10.0), 5.0 - np.arange(32.0)], 1)  # walking -y from (10, 5)
    scene = _scene(
        ego_speed_mps=5.0,
        center_xy=np.array([[10.0, 5.0], [10.0, 5.0], [30.0, 0.0]]),
        size_lw=np.array([[0.5, 0.5], [0.5, 0.5], [4.6, 1.9]]),
        yaw=np.array([-np.pi / 2, -np.pi / 2, 0.0]),
        velocity_xy=np.array([[0.0, -1.5], [0.0, 0.0], [8.0, 0.0]]),
        path_xy=np.stack([path, path, np.stack([30.0 + 2 * np.arange(32.0), np.zeros(32)], 1)]),
        path_step_m=np.array([1.0, 1.0, 2.0]),
        accel_mps2=np.array([0.0, 0.0, -4.0]),
        release_in_m=np.array([np.nan, 10.0, np.nan]),
        release_speed_mps=np.array([np.nan, 2.0, np.nan]),
        is_walker=np.array([True, True, False]),
    )
    xy, head = actor_tracks(scene, plan, P)
    np.testing.assert_allclose(xy[0, :, 1], 5.0 - 1.5 * plan.t, atol=1e-9)  # along its walking line
    assert head[0, 5] == pytest.approx(-np.pi / 2)
    t_rel = plan.t[np.argmax(plan.s - plan.s[0] >= 10.0)]  # when the ego has driven 10 m
    waiting = plan.t < t_rel
    assert np.all(xy[1, waiting, 1] == 5.0) and xy[1, -1, 1] == pytest.approx(5.0 - 2.0 * (6.0 - t_rel))
    assert xy[2, -1, 0] == pytest.approx(30.0 + 8.0**2 / (2 * 4.0))  # braked to a stop


def test_time_to_conflict_of_a_static_obstacle_is_gap_over_speed() -> None:
    scene = _scene(
        ego_speed_mps=10.0,
        center_xy=np.array([[40.0, 0.0]]),
        size_lw=np.array([[0.4, 0.4]]),
        yaw=np.zeros(1),
        velocity_xy=np.zeros((1, 2)),
    )
    c = compute_conflicts(scene, P)
    gap = 40.0 - 0.2 - (P.rear_to_center_m + 0.5 * P.ego_length_m)
    assert c.gap_now_m[0] == pytest.approx(gap)
    assert c.ttc_s[0] == pytest.approx((gap - P.margin_m) / 10.0, abs=1e-6)
    assert c.closing_mps[0] == pytest.approx(10.0)
    assert not c.shielded[0]
