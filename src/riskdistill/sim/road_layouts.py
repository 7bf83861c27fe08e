"""``build_layout``: a :class:`~riskdistill.sim.layouts.LayoutParams` in, a validated
:class:`~riskdistill.sim.layouts.Layout` out, for every layout family (single roads and the highway in
:mod:`riskdistill.sim.layouts`, junctions in :mod:`riskdistill.sim.layouts_junction`)."""

from __future__ import annotations

from riskdistill.sim.layouts import (
    Layout,
    LayoutParams,
    _Builder,
    build_highway,
    build_single_road,
    rotate_layout,
    validate_road_map,
)
from riskdistill.sim.layouts_junction import build_junction


def build_layout(params: LayoutParams) -> Layout:
    """Build the road map of ``params`` (deterministic: equal params give equal arrays)."""
    b = _Builder(params)
    junction_id: int | None = None
    connectors: dict[tuple[str, int, str, int], int] = {}
    if params.family in ("straight", "curve"):
        roads = build_single_road(b)
    elif params.family == "highway":
        roads = build_highway(b)
    else:
        roads, junction_id, connectors = build_junction(b)
    layout = Layout(
        road_map=b.road_map(), params=params, roads=roads, junction_id=junction_id, connectors=connectors
    )
    if params.rotation_rad != 0.0:
        rotate_layout(layout, params.rotation_rad)
    validate_road_map(layout.road_map)
    return layout
