"""Agents for other simulators: the riskdistill student as a CARLA leaderboard / Bench2Drive agent.

- :mod:`~riskdistill.agents.carla_convert`: CARLA's frames, sensors and geo-reference <-> ours (NumPy only);
- :mod:`~riskdistill.agents.carla_route`: the route's global plan -> target point and command (as our env);
- :mod:`~riskdistill.agents.carla_agent`: :class:`~riskdistill.agents.carla_agent.RiskdistillAgent`, the
  leaderboard agent (``setup`` / ``sensors`` / ``run_step`` / ``destroy``);
- ``bench2drive_agent.py``: the file to hand to Bench2Drive's ``leaderboard_evaluator.py --agent``;
- :mod:`~riskdistill.agents.replay`: Bench2Drive clips delivered to an agent as CARLA would (no server).

See ``docs/carla.md``. Nothing here imports ``carla`` at module level: the client package is needed only
when ``run_step`` builds its ``carla.VehicleControl``.
"""
