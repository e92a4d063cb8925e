"""Sweeps: one scenario file, many configurations, one parent run folder.

::

    [[sweep.configs]]            # named override tables, deep-merged into the scenario
    name = "base"
    protocol = { kind = "solo", agents = ["solver"] }

    [[sweep.configs]]
    name = "single-agent"
    protocol = { kind = "react", agents = ["tooled"] }

    [sweep.axes]                 # dotted scenario paths → values; the cross product runs
    "run.seed" = [1, 2]
    "agents.*.model" = ["smollm2-135m-instruct"]   # * = every key of that table
"""

from __future__ import annotations

import copy
import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from agentsim.scenario.errors import ScenarioError, where_line
from agentsim.scenario.schema import Scenario
from agentsim.scenario.validate import scenario_from_raw


class SweepSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    configs: list[dict[str, Any]] = msgspec.field(default_factory=list)
    axes: dict[str, list[Any]] = msgspec.field(default_factory=dict)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` in ``raw``; a ``*`` part stands for every key of that table
    (``"agents.*.model"`` gives every agent the model)."""
    parts = dotted.split(".")
    if "*" in parts:
        i = parts.index("*")
        head = ".".join(parts[:i])
        table: Any = raw
        for part in parts[:i]:
            table = table.get(part, {}) if isinstance(table, dict) else {}
        if not isinstance(table, dict) or not table:
            raise ScenarioError(
                f"sweep.axes.{dotted}: {head or 'the scenario'} has no table to expand *"
            )
        for key in list(table):
            _set_path(raw, ".".join([*parts[:i], key, *parts[i + 1 :]]), value)
        return
    cur = raw
    for part in parts[:-1]:
        nxt = cur.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ScenarioError(
                f"sweep.axes.{dotted} must name a table path, but {part} is a value"
            )
        cur = nxt
    cur[parts[-1]] = value


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(value))[:32]


def expand(text: str, where: str, base_dir: Path) -> list[tuple[str, Scenario]]:
    """The configurations of a scenario with ``[sweep]`` (one entry when it has none)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"TOML syntax error: {e} ({where})") from None
    sweep_raw = raw.pop("sweep", None)
    if not sweep_raw:
        return [("", scenario_from_raw(raw, text, where, base_dir=base_dir))]
    try:
        spec = msgspec.convert(sweep_raw, SweepSpec)
    except msgspec.ValidationError as e:
        raise ScenarioError(f"sweep: {e} ({where_line(text, ['sweep'], where)})") from None
    configs = spec.configs or [{"name": "base"}]
    out: list[tuple[str, Scenario]] = []
    keys = list(spec.axes)
    for i, cfg in enumerate(configs):
        name = str(cfg.get("name", f"config{i}"))
        override = {k: v for k, v in cfg.items() if k != "name"}
        for combo in itertools.product(*(spec.axes[k] for k in keys)):
            merged = _merge(raw, override)
            label = [_slug(name)]
            for key, value in zip(keys, combo, strict=True):
                _set_path(merged, key, value)
                label.append(f"{key.split('.')[-1]}={_slug(value)}")
            run_name = _slug("-".join(label))[:60] or "config"
            merged.setdefault("run", {})["name"] = (
                run_name if run_name[0].isalpha() else f"c{run_name}"[:60]
            )
            try:
                scenario = scenario_from_raw(merged, text, where, base_dir=base_dir)
            except ScenarioError as e:
                raise ScenarioError(f"sweep config {name!r}: {e}") from None
            out.append(("-".join(label), scenario))
    return out
