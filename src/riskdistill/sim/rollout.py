"""Drive one scenario instance with one driver: the loop every evaluator, recorder and viewer shares.

    log = run_route(instance, driver, env=env, observers=[recorder])

``driver`` is a :class:`~riskdistill.contracts.agent.Driver`, or a factory for one (see
:func:`build_driver`). A driver with a ``needs_sensors()`` method (a driver that plans at a lower rate than
the simulation) is asked before every observation whether it will read the sensors; when it says no, the
environment does not render them and that step's ``AgentInput`` carries no images.

Observers watch the drive without changing it (recording a data set, the closed-loop artefacts, a Rerun
recording): each gets ``on_start(env, driver)`` once, ``on_step(env, agent_input, action)`` after the driver
answered each observation (the world is still at the state the driver saw), ``on_crash(env, exc)`` when the
driver raised and ``on_end(env, log)`` when the route ends; every method is optional.

A driver that raises ends the route as "Agent crashed"; so does an observer that raises
:class:`AgentOutputError` (a malformed driver output it noticed). Any other observer exception propagates
to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from riskdistill.contracts.agent import Action, AgentInput, Driver
from riskdistill.sim.env import DrivingEnv, RouteLog
from riskdistill.sim.events import RouteEnd
from riskdistill.sim.scenarios.base import ScenarioInstance


class AgentOutputError(Exception):
    """Raised by an observer for a driver output it cannot use: the route ends as "Agent crashed"."""


class RouteObserver(Protocol):
    """Watches a drive (all methods optional)."""

    def on_start(self, env: DrivingEnv, driver: Driver) -> None: ...

    def on_step(self, env: DrivingEnv, agent_input: AgentInput, action: Action) -> None: ...

    def on_crash(self, env: DrivingEnv, exc: BaseException) -> None: ...

    def on_end(self, env: DrivingEnv, log: RouteLog) -> None: ...


def build_driver(driver: Any, env: DrivingEnv) -> Driver:
    """``driver`` itself when it is a driver (it has ``act``); else a factory: called with no argument, so a
    driver never holds the world, except a factory marked ``privileged = True`` (the expert, whose class is
    its own factory), which is called with ``env``."""
    if hasattr(driver, "act") and not isinstance(driver, type):
        return driver
    if getattr(driver, "privileged", False):
        return driver(env)
    return driver()


def _notify(observers: Sequence[Any], method: str, *args: Any) -> None:
    for obs in observers:
        fn = getattr(obs, method, None)
        if fn is not None:
            fn(*args)


def run_route(
    instance: ScenarioInstance,
    driver: Any,
    env: DrivingEnv | None = None,
    observers: Sequence[Any] = (),
    max_steps: int | None = None,
) -> RouteLog:
    """Run ``driver`` (a driver or a factory, :func:`build_driver`) on ``instance`` until the route ends
    (or ``max_steps``). See the module docstring for observers and crashes."""
    env = env or DrivingEnv()
    env.observe_when = None  # the first observation always carries the sensors
    agent_input = env.reset(instance)
    driver = build_driver(driver, env)
    env.observe_when = getattr(driver, "needs_sensors", None)
    _notify(observers, "on_start", env, driver)
    steps = 0
    try:
        driver.reset()
    except Exception as exc:
        _crash(env, observers, exc)
        return _end(env, observers)
    while True:
        try:
            action = driver.act(agent_input)
        except Exception as exc:
            _crash(env, observers, exc)
            break
        try:
            _notify(observers, "on_step", env, agent_input, action)
        except AgentOutputError:
            env.abort(RouteEnd.AGENT_CRASHED)
            break
        agent_input, _, done = env.step(action)
        steps += 1
        if done or (max_steps is not None and steps >= max_steps):
            break
    return _end(env, observers)


def _crash(env: DrivingEnv, observers: Sequence[Any], exc: BaseException) -> None:
    """The driver raised: the route ends as "Agent crashed"; observers hear of it (``on_crash``)."""
    env.abort(RouteEnd.AGENT_CRASHED)
    _notify(observers, "on_crash", env, exc)


def _end(env: DrivingEnv, observers: Sequence[Any]) -> RouteLog:
    env.observe_when = None
    log = env.route_log()
    _notify(observers, "on_end", env, log)
    return log
