"""Closed-loop evaluation with Bench2Drive's metrics (see ``/work/shared/reference/bench2drive.md``).

Modules
-------
* :mod:`riskdistill.evaluation.driving_score`: per-route scores (route completion, infraction
  penalty, composed score), route status and success, Multi-Ability grouping and the suite summary
  (Driving Score, Success Rate, Efficiency, Comfortness, ability success rates, infractions per km).
* :mod:`riskdistill.evaluation.comfort`: per-route Comfortness (nuPlan bounds on Savitzky-Golay
  smoothed kinematics over 20-step segments) and Efficiency (ego speed relative to surrounding traffic
  over 20 distance checkpoints).
* :mod:`riskdistill.evaluation.leaderboard`: the CARLA leaderboard 2.0 / Bench2Drive checkpoint JSON
  (``{"_checkpoint": {"global_record", "progress", "records"}, ...}``): build, save, load and validate.

Every ``compute_*`` function is pure: it reads its arguments and returns new values.
"""
