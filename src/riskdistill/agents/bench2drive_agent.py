"""The file to give Bench2Drive's (or the CARLA leaderboard's) evaluator: ``--agent <this file>``.

The evaluator imports this file by path (its folder goes on ``sys.path``) and calls ``get_entry_point()``
for the agent class; the agent itself lives in :mod:`riskdistill.agents.carla_agent` (riskdistill must be
installed in the evaluator's Python). ``--agent-config`` is a ``CarlaAgentConfig`` JSON file or a student
checkpoint folder. See ``docs/carla.md``.
"""

from riskdistill.agents.carla_agent import RiskdistillAgent, get_entry_point

__all__ = ["RiskdistillAgent", "get_entry_point"]
