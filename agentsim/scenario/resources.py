"""What an agent asks of a Ray cluster, as plain numbers: read from ``[agents.X.resources]``.

Pure functions over the schema (no Ray import), so ``agentsim validate`` can check the rules
Ray would otherwise only report once a run has started, and the Ray launcher turns the same
numbers into actor options and placement-group bundles.
"""

from __future__ import annotations

import math
import re

from agentsim.scenario.schema import ResourcesSpec

RESERVED = frozenset({"CPU", "GPU", "memory", "object_store_memory"})
"""Ray's built-in resource names: asked for with their own fields, never under ``custom``."""

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_MEMORY_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def memory_bytes(value: int | str) -> int:
    """``memory`` as bytes: an int, or a number with a unit (``"512MiB"``, ``"2GB"``).

    Raises:
        ValueError: ``"must be ..."`` (the caller names the field).
    """
    if isinstance(value, int):
        return value
    m = _MEMORY_RE.match(value)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise ValueError(
            "must be bytes or a number with a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    return int(float(m.group(1)) * _UNITS[unit])


def quantities(spec: ResourcesSpec) -> dict[str, float]:
    """Every resource asked for, by Ray's names (``CPU``, ``GPU``, ``memory``, custom), zero
    values left out: the shape of a placement-group bundle."""
    out: dict[str, float] = {
        "CPU": spec.num_cpus,
        "GPU": spec.num_gpus,
        "memory": float(memory_bytes(spec.memory)),
        **spec.custom,
    }
    return {k: v for k, v in out.items() if v > 0}


def problems(spec: ResourcesSpec) -> list[tuple[list[str], str, object]]:
    """What Ray would refuse in one agent's resources: ``(field path below resources, rule,
    value)`` for each problem, in field order."""
    found: list[tuple[list[str], str, object]] = []
    try:
        memory_bytes(spec.memory)
    except ValueError as e:
        found.append((["memory"], str(e), spec.memory))
    whole = "must be a whole number when above 1 (Ray's rule for resource quantities)"
    for field, value in (("num_cpus", spec.num_cpus), ("num_gpus", spec.num_gpus)):
        if value > 1 and not math.isclose(value, round(value)):
            found.append(([field], whole, value))
    for name, value in spec.custom.items():
        if name in RESERVED:
            found.append(
                (
                    ["custom", name],
                    "is one of Ray's own resources: use num_cpus/num_gpus/memory",
                    value,
                )
            )
        elif not name:
            found.append((["custom"], "must not name an empty resource", name))
        elif value > 1 and not math.isclose(value, round(value)):
            found.append((["custom", name], whole, value))
    for key in spec.labels:
        if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9_./-]*[A-Za-z0-9])?$", key):
            found.append((["labels", key], "must be a label name (letters, digits, - _ . /)", key))
    return found
