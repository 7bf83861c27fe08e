"""The contracts every layer above may import: what crosses the boundaries between simulator, data,
teachers, models and evaluation.

- :mod:`.agent`: the driver interface (``AgentInput``, ``Action``, ``SensorRequest``, ``Driver``);
- :mod:`.batch`: what a model sees (``Observation``) and what it is trained against (``Targets``), with
  tensor shapes (imports torch);
- :mod:`.observation`: the one conversion ``AgentInput -> Observation`` (dataset and driver alike; torch);
- :mod:`.rig`: camera rigs (``CameraSpec``, ``Rig``), their JSON files, perturbations and resizing;
- :mod:`.ego`: the ego vehicle's body;
- :mod:`.labels`: the risk-label folder layout.

Import the submodule you need (``from riskdistill.contracts.agent import AgentInput``); this package
imports nothing, so the simulator never pulls in torch.
"""
