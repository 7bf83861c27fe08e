"""The risk-label folder: one owner for its layout.

Written by the teacher's labelling runner (``riskdistill label``), read by training targets, open-loop
evaluation, the report and the viewers. By default it sits next to the data set it labels::

    <data>/labels/risk/
        labelling.json                 folder settings: data root, grid, raster parameters, teacher
        meta.json                      {"grid": ...}: the BevGrid the maps are on
        maps/<frame_id>.npy            float16 [H, W] risk map (row 0 = front, col 0 = left)
        records/<frame_id>.json        the teacher's FrameLabel (objects, scores, reasons, provenance)
        errors/<frame_id>.json         a frame that failed: kind, message, raw text
        index/shard-<i>-of-<n>.jsonl   one line per finished frame
        runs/<utc>-shard-<i>-of-<n>/   provenance of each labelling run

A frame id may contain ``/`` (``<route_id>/<step>``): its files then sit in sub-folders.
"""

from __future__ import annotations

from pathlib import Path

LABELLING_JSON = "labelling.json"
META_JSON = "meta.json"
MAPS = "maps"
RECORDS = "records"
ERRORS = "errors"
INDEX = "index"
RUNS = "runs"


def default_label_dir(data_root: str | Path) -> Path:
    """``<data_root>/labels/risk``: where ``riskdistill label`` writes and training looks by default."""
    return Path(data_root) / "labels" / "risk"


def risk_map_path(label_dir: str | Path, frame_id: str) -> Path:
    return Path(label_dir) / MAPS / f"{frame_id}.npy"


def record_path(label_dir: str | Path, frame_id: str) -> Path:
    return Path(label_dir) / RECORDS / f"{frame_id}.json"


def error_path(label_dir: str | Path, frame_id: str) -> Path:
    return Path(label_dir) / ERRORS / f"{frame_id}.json"


def has_risk_maps(label_dir: str | Path | None) -> bool:
    return label_dir is not None and (Path(label_dir) / MAPS).is_dir()


def find_label_dir(data_root: str | Path | None) -> Path | None:
    """The default label folder of a data set when it holds risk maps, else None."""
    if data_root is None:
        return None
    d = default_label_dir(data_root)
    return d if has_risk_maps(d) else None
