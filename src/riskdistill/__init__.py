"""riskdistill: Risk Semantic Distillation for end-to-end autonomous driving.

Layers (dependencies flow downwards only; see docs/architecture.md; checked by ``lint-imports``):

    cli
    experiment
    viz
    evaluation | training
    models                  (contracts only: no sim, data or teacher)
    teacher
    data
    sim
    contracts | runs
    config | geometry | types | registry
    io
"""

import os

# OpenMP threads (Numba's renderer and rasteriser, PyTorch) spin-wait after every parallel region by default.
# With a render every few milliseconds on a small machine that spinning steals the cores from the other
# runtime in the same process: measured 120 -> 290 rendered frames/s, and 1-4 s -> 0.05-0.1 s per tiny-student
# step in closed loop, on 2 cores. Passive waiting fixes it, but only when set before an OpenMP runtime
# starts, hence here, on the first import of the package. Only a default: an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
