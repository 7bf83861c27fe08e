"""riskdistill: Risk Semantic Distillation for end-to-end autonomous driving.

Layers (dependencies flow downwards only; see docs/architecture.md):

    cli, viz
    training, evaluation
    models
    sim, data, teacher
    geometry, types, config, io
"""

__version__ = "0.1.0"
