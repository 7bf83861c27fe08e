"""Top-down previews of the expert driving a scenario (``riskdistill sim preview``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from riskdistill.sim.env import DrivingEnv, RouteLog
from riskdistill.sim.expert import ExpertDriver
from riskdistill.sim.rollout import run_route
from riskdistill.sim.scenarios import build_scenario
from riskdistill.viz.topdown import ego_view, render_topdown, save_gif, save_png


def render_preview(
    scenario: str, seed: int, out: Path, family: str | None = None, every: int = 2, size_px: int = 384
) -> RouteLog:
    """Drive ``(scenario, seed)`` with the expert and write a GIF (every ``every``-th step) or a PNG."""
    instance = build_scenario(scenario, seed, {"family": family} if family else None)
    frames: list[np.ndarray] = []
    step = [0]

    class Grab:  # a route observer: a top-down frame every ``every``-th step
        def on_step(self, env: DrivingEnv, agent_input: object, action: object) -> None:
            if step[0] % every == 0:
                view = ego_view(env.world, extent_m=60.0, size_px=size_px)
                frames.append(render_topdown(env.world, view, route=env.instance.route))
            step[0] += 1

    log = run_route(instance, ExpertDriver, observers=[Grab()])
    if out.suffix.lower() == ".png":
        # The most interesting single frame: the moment of minimum speed after the scenario trigger.
        k = int(np.argmin(np.asarray(log.speed_mps)[::every][: len(frames)])) if frames else 0
        save_png(frames[k], out)
    else:
        save_gif(frames, out, fps=max(1, 10 // every))
    return log
