"""Drive one scenario instance with one driver: the loop every evaluator and recorder shares."""

from __future__ import annotations

from collections.abc import Callable

from riskdistill.contracts.agent import AgentInput, Driver
from riskdistill.sim.env import DrivingEnv, RouteLog
from riskdistill.sim.events import RouteEnd
from riskdistill.sim.scenarios.base import ScenarioInstance

StepHook = Callable[[DrivingEnv, AgentInput], None]


def run_route(
    instance: ScenarioInstance,
    driver: Driver | Callable[[DrivingEnv], Driver],
    env: DrivingEnv | None = None,
    on_step: StepHook | None = None,
    max_steps: int | None = None,
) -> RouteLog:
    """Run ``driver`` on ``instance`` until the route ends. A driver exception ends it as "Agent crashed".

    ``driver`` may be a factory taking the environment (privileged drivers such as the expert need it).
    """
    env = env or DrivingEnv()
    agent_input = env.reset(instance)
    if isinstance(driver, type) or not hasattr(driver, "act"):
        driver = driver(env)
    driver.reset()
    steps = 0
    while True:
        if on_step is not None:
            on_step(env, agent_input)
        try:
            action = driver.act(agent_input)
        except Exception:
            env.abort(RouteEnd.AGENT_CRASHED)
            break
        agent_input, _, done = env.step(action)
        steps += 1
        if done or (max_steps is not None and steps >= max_steps):
            break
    return env.route_log()
