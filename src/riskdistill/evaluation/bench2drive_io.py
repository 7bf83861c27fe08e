"""Closed-loop output that Bench2Drive's own tools read unchanged.

A closed-loop output folder ``OUT`` gets a ``bench2drive/`` sub-folder laid out the way Bench2Drive's README
runs its tools (``docs/metrics.md`` shows the commands)::

    OUT/bench2drive/json/results.json           the leaderboard checkpoint, alone in its folder:
                                                tools/merge_route_json.py -f OUT/bench2drive/json
    OUT/bench2drive/metric/<save_name>/metric_info.json
                                  the ego's CARLA state per step, for
                                  tools/efficiency_smoothness_benchmark.py -m OUT/bench2drive/metric
    OUT/bench2drive/routes.xml    the evaluated routes as a Bench2Drive routes file, for
                                  tools/ability_benchmark.py -f OUT/bench2drive/routes.xml

Everything here is in CARLA's frame (x forward, **y right**, yaw clockwise in degrees, angular velocity in
deg/s), converted once from this project's y-left frame.
"""

from __future__ import annotations

import math
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riskdistill.evaluation.comfort import compute_comfort
from riskdistill.io import atomic_write_json, atomic_write_text
from riskdistill.sim.criteria import route_file_s
from riskdistill.sim.env import RouteLog
from riskdistill.sim.suites import RouteSpec

B2D_DIR = "bench2drive"
JSON_DIR = "json"
METRIC_DIR = "metric"
METRIC_FILE = "metric_info.json"
ROUTES_XML = "routes.xml"
TOWN_PREFIX = "RiskDistill_"
MIN_METRIC_SAMPLES = 3  # the efficiency/smoothness tool's Savitzky-Golay fit needs three samples
_DIGITS = 6

MetricSamples = dict[str, dict[str, list[float]]]  # {"0": {"acceleration": [x, y, z], ...}, "1": ...}


# ------------------------------------------------------------------------------------------ per route
def town_name(spec: RouteSpec) -> str:
    """The route's "town": the layout family it is built on (each route has its own procedural map)."""
    from riskdistill.sim.scenarios import REGISTRY

    family = spec.layout.get("family") or (
        REGISTRY[spec.scenario].families[0] if spec.scenario in REGISTRY else "unknown"
    )
    return f"{TOWN_PREFIX}{family}"


def _sample(x: float, y: float, yaw: float, speed: float, accel: float, yaw_rate: float) -> dict[str, list]:
    """One step of CARLA's ``get_metric_info()`` from the ego state in this project's frame."""
    c, s = math.cos(yaw), math.sin(yaw)
    ax = accel * c - speed * yaw_rate * s  # along the heading + centripetal, world frame (y left)
    ay = accel * s + speed * yaw_rate * c

    def r(values: list[float]) -> list[float]:
        return [round(float(v), _DIGITS) + 0.0 for v in values]

    return {
        "acceleration": r([ax, -ay, 0.0]),
        "angular_velocity": r([0.0, 0.0, -math.degrees(yaw_rate)]),
        "forward_vector": r([c, -s, 0.0]),
        "right_vector": r([s, c, 0.0]),
        "location": r([x, -y, 0.0]),
        "rotation": r([0.0, 0.0, -math.degrees(yaw)]),
    }


def metric_samples(log: RouteLog | None) -> MetricSamples:
    """The route's ``metric_info.json`` content: one sample per logged step (10 Hz), keyed "0", "1", ...

    A route with fewer than three logged steps (it crashed at once) is padded with copies of its last step, or
    of a car standing at the origin when nothing was logged, so that Bench2Drive's tool can read it.
    """
    steps: list[dict[str, list]] = []
    if log is not None and log.x_m:
        n = len(log.x_m)
        accel = log.accel_mps2 if len(log.accel_mps2) == n else [0.0] * n
        yaw_rate = log.yaw_rate_radps if len(log.yaw_rate_radps) == n else [0.0] * n
        for k in range(n):
            steps.append(
                _sample(log.x_m[k], log.y_m[k], log.yaw_rad[k], log.speed_mps[k], accel[k], yaw_rate[k])
            )
    last = steps[-1] if steps else _sample(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    while len(steps) < MIN_METRIC_SAMPLES:
        steps.append({key: list(v) for key, v in last.items()})
    return {str(k): step for k, step in enumerate(steps)}


def metric_comfort(samples: MetricSamples) -> float:
    """Comfortness of a route from its metric samples (what Bench2Drive's tool computes from the file)."""
    steps = list(samples.values())
    return compute_comfort(
        [s["acceleration"] for s in steps],
        [s["angular_velocity"] for s in steps],
        [s["forward_vector"] for s in steps],
        [s["right_vector"] for s in steps],
    )


def metric_info_path(out_dir: str | Path, save_name: str) -> Path:
    return Path(out_dir) / B2D_DIR / METRIC_DIR / save_name / METRIC_FILE


def save_metric_info(out_dir: str | Path, save_name: str, samples: MetricSamples) -> Path:
    path = metric_info_path(out_dir, save_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, samples, indent=None)
    return path


# ------------------------------------------------------------------------------------------ the folder
def write_bench2drive_folder(
    out_dir: str | Path, checkpoint: dict[str, Any], routes: Sequence[tuple[int, RouteSpec]]
) -> Path:
    """Write ``OUT/bench2drive/json/results.json`` (``checkpoint``, the leaderboard results file) and
    ``routes.xml`` (``routes``: ``(number in the suite, spec)`` of the evaluated routes). A ``merged.json``
    left by Bench2Drive's merge tool from an earlier run is removed (the tool writes it anew)."""
    root = Path(out_dir) / B2D_DIR
    json_dir = root / JSON_DIR
    json_dir.mkdir(parents=True, exist_ok=True)
    for stale in json_dir.glob("*.json"):
        if stale.name != "results.json":
            stale.unlink()
    atomic_write_json(json_dir / "results.json", checkpoint)
    xml_path = root / ROUTES_XML
    if not xml_path.is_file() or _xml_route_ids(xml_path) != [n for n, _ in routes]:
        save_routes_xml(xml_path, routes)
    return root


def remove_bench2drive_folder(out_dir: str | Path) -> None:
    shutil.rmtree(Path(out_dir) / B2D_DIR, ignore_errors=True)


# ------------------------------------------------------------------------------------------ routes XML
def _weather_attributes(weather: Any, route_percentage: int) -> dict[str, str]:
    return {
        "route_percentage": str(route_percentage),
        "cloudiness": f"{100.0 * weather.cloudiness:.1f}",
        "precipitation": "0.0",
        "precipitation_deposits": f"{100.0 * weather.wetness:.1f}",
        "wetness": f"{100.0 * weather.wetness:.1f}",
        "wind_intensity": "0.0",
        "sun_azimuth_angle": "0.0",
        "sun_altitude_angle": f"{weather.sun_altitude_deg:.1f}",
        "fog_density": f"{100.0 * weather.fog_density:.1f}",
    }


def route_xml(number: int, spec: RouteSpec) -> ET.Element:
    """One ``<route id=... town=...>`` element: waypoints every 2 m (CARLA frame), the scenario with its
    trigger point, and the weather. ``name`` and ``seed`` (ignored by Bench2Drive) name the suite entry. A
    route whose scenario cannot be built keeps its id, town and scenario type only."""
    from riskdistill.sim.scenarios import ScenarioError, build_scenario

    attrs = {"id": str(number), "town": town_name(spec), "name": spec.route_id, "seed": str(spec.seed)}
    route = ET.Element("route", attrs)
    waypoints = ET.SubElement(route, "waypoints")
    try:
        inst = build_scenario(spec.scenario, spec.seed, spec.layout)
    except ScenarioError:  # its result is "Failed - Simulation crashed"; the entry keeps id, town and type
        scenarios = ET.SubElement(route, "scenarios")
        ET.SubElement(scenarios, "scenario", {"name": f"{spec.scenario}_1", "type": spec.scenario})
        return route
    path = inst.route.path
    for p in path.point_at(route_file_s(inst.start_s_m, path.length_m)):
        ET.SubElement(waypoints, "position", {"x": f"{p[0]:.1f}", "y": f"{-p[1]:.1f}", "z": "0.0"})
    scenarios = ET.SubElement(route, "scenarios")
    scenario = ET.SubElement(scenarios, "scenario", {"name": f"{spec.scenario}_1", "type": spec.scenario})
    if "initial_gap_m" in inst.params and inst.emergency_vehicle_id is not None:
        ET.SubElement(scenario, "distance", {"value": f"{inst.params['initial_gap_m']:.0f}"})
    s_trigger = next(
        (t.ego_s_m for t in inst.script.triggers if t.starts_scenario and t.ego_s_m is not None),
        inst.start_s_m,
    )
    p = path.point_at(s_trigger)
    yaw = -math.degrees(float(path.heading_at(s_trigger)))
    ET.SubElement(
        scenario, "trigger_point", {"x": f"{p[0]:.1f}", "y": f"{-p[1]:.1f}", "yaw": f"{yaw:.1f}", "z": "0.0"}
    )
    weathers = ET.SubElement(route, "weathers")
    for pct in (0, 100):
        ET.SubElement(weathers, "weather", _weather_attributes(inst.weather, pct))
    return route


def routes_xml_text(routes: Sequence[tuple[int, RouteSpec]]) -> str:
    root = ET.Element("routes")
    for number, spec in routes:
        root.append(route_xml(number, spec))
    ET.indent(root, space="   ")
    return ET.tostring(root, encoding="unicode") + "\n"


def save_routes_xml(path: str | Path, routes: Sequence[tuple[int, RouteSpec]]) -> Path:
    """Write ``routes`` (``(number, spec)``; the number is the route ``id``) as a Bench2Drive routes file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, routes_xml_text(routes))
    return path


def _xml_route_ids(path: Path) -> list[int] | None:
    try:
        return [int(r.get("id", "-1")) for r in ET.parse(path).getroot().findall("route")]
    except (ET.ParseError, ValueError):
        return None
