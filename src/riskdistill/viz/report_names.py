"""One way to name runs in every section of the report: ``label [condition] · seed N``.

Folders, checkpoints and JSON files are named in several ways (``baseline-s0``, ``rsd_seed1``,
``runs/base/checkpoints/final``); :func:`split_seed` takes the label and the seed from such a name (the
rule of :mod:`riskdistill.evaluation.compare`) and :func:`display_name` writes them back the same way for
the closed-loop tables, the open-loop columns, the sample frames, the training curves and the route pages.
A group of seeds is named without its seed (``baseline``, ``baseline [rig pitch-3deg]``).
"""

from __future__ import annotations

import re

NOMINAL = "nominal"
SEED_IN_NAME = re.compile(r"^(?P<label>.+?)[_-]?(?:seed|s)(?P<seed>\d+)$")


def split_seed(name: str) -> tuple[str, int | None]:
    """``"baseline-s0"`` -> ``("baseline", 0)``, ``"rsd_seed12"`` -> ``("rsd", 12)``, else no seed."""
    m = SEED_IN_NAME.match(str(name))
    return (m["label"], int(m["seed"])) if m else (str(name), None)


def display_name(label: str, seed: int | None = None, condition: str = NOMINAL) -> str:
    """``label``, ``label [condition]``, with `` · seed N`` when the seed is known."""
    name = label if condition == NOMINAL else f"{label} [{condition}]"
    return name if seed is None else f"{name} · seed {seed}"


def display_of(name: str) -> str:
    """A name as it comes (a folder, a ``LABEL=`` spec) in the report's form: its seed suffix, if any,
    written as `` · seed N``."""
    label, seed = split_seed(name)
    return display_name(label, seed)


def slug(text: str, max_len: int = 60) -> str:
    """A file-name-safe form of ``text`` (letters, digits, ``-``, ``_``, ``.``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.") or "run"
    return s[:max_len]
