"""From ``[agents.X.resources]`` to what Ray is asked: actor options, bundles, feasibility.

Ray is never imported here: the functions take and return plain values, so they are tested
without a cluster, and the launcher passes Ray's own objects in.
"""

from __future__ import annotations

import math
import os
from typing import Any

from agentsim.scenario.resources import memory_bytes, quantities
from agentsim.scenario.schema import ResourcesSpec

STRATEGIES = {
    "pack": "PACK",
    "spread": "SPREAD",
    "strict_pack": "STRICT_PACK",
    "strict_spread": "STRICT_SPREAD",
}
"""``run.placement`` → Ray's placement-group strategy."""

SUPERVISOR_CONCURRENCY = 4
"""Threads of each supervisor actor: the log stream, control calls, and room for both."""


def actor_options(spec: ResourcesSpec, *, bundle: tuple[Any, int] | None = None) -> dict[str, Any]:
    """Ray actor options for one agent's supervisor.

    Args:
        spec: the agent's resources.
        bundle: ``(scheduling strategy, bundle index)`` when the run uses a placement group;
            the strategy object is built by the caller (it is Ray's).
    """
    options: dict[str, Any] = {
        "num_cpus": spec.num_cpus,
        "num_gpus": spec.num_gpus,
        "max_concurrency": SUPERVISOR_CONCURRENCY,
        "max_restarts": 0,
        "max_task_retries": 0,
    }
    memory = memory_bytes(spec.memory)
    if memory:
        options["memory"] = memory
    if spec.custom:
        options["resources"] = dict(spec.custom)
    if bundle is not None:
        options["scheduling_strategy"] = bundle[0]
    elif spec.labels:  # in a placement group the labels are the bundle's
        options["label_selector"] = dict(spec.labels)
    return options


def bundles(specs: list[ResourcesSpec]) -> tuple[list[dict[str, float]], list[dict[str, str]]]:
    """The placement group's bundles (one per agent, in order) and their label selectors."""
    return [quantities(s) for s in specs], [dict(s.labels) for s in specs]


def _label_ok(have: dict[str, str], want: dict[str, str]) -> bool:
    for key, value in want.items():
        if value.startswith(("!", "in(")):  # Ray's operators: left to Ray
            continue
        if have.get(key) != value:
            return False
    return True


def fitting_nodes(spec: ResourcesSpec, nodes: list[dict[str, Any]]) -> list[str]:
    """Ids of the live nodes (``ray.nodes()`` entries) whose totals could hold ``spec``."""
    need = quantities(spec)
    out = []
    for node in nodes:
        if not node.get("Alive"):
            continue
        have = node.get("Resources", {})
        if all(have.get(k, 0.0) + 1e-9 >= v for k, v in need.items()) and _label_ok(
            node.get("Labels", {}), spec.labels
        ):
            out.append(str(node.get("NodeID", "")))
    return out


def describe_nodes(nodes: list[dict[str, Any]]) -> str:
    """The live nodes in one line: ``id8 (ip): CPU 2, node_a 1; ...`` (what a user needs to
    see to fix a resource request)."""
    parts = []
    for node in nodes:
        if not node.get("Alive"):
            continue
        res = node.get("Resources", {})
        shown = ", ".join(
            f"{k} {v:g}"
            for k, v in sorted(res.items())
            if not k.startswith("node:") and k not in ("object_store_memory", "memory")
        )
        labels = {k: v for k, v in node.get("Labels", {}).items() if not k.startswith("ray.io/")}
        extra = f", labels {labels}" if labels else ""
        parts.append(
            f"{str(node.get('NodeID', ''))[:8]} ({node.get('NodeManagerAddress', '?')}): {shown}{extra}"
        )
    return "; ".join(parts) or "no live node"


def describe_need(spec: ResourcesSpec) -> str:
    """One agent's request in one line, e.g. ``CPU 1, node_a 1, labels {'zone': 'a'}``."""
    need = ", ".join(f"{k} {v:g}" for k, v in quantities(spec).items()) or "nothing"
    return need + (f", labels {dict(spec.labels)}" if spec.labels else "")


def local_cluster(
    specs: list[ResourcesSpec], *, copies: int = 1, extra_cpus: float = 0.0
) -> dict[str, Any]:
    """``ray.init`` arguments for a one-node cluster started for this run
    (``ray_address = "local"``), sized so that the agents fit: logical CPUs for all of them
    (at least this host's cores), their custom resources and labels. ``copies`` runs (a
    parallel sweep) of ``extra_cpus`` each (a runner task) are provided for."""
    need_cpus = copies * (extra_cpus + sum(s.num_cpus for s in specs))
    resources: dict[str, float] = {}
    labels: dict[str, str] = {}
    for s in specs:
        for name, amount in s.custom.items():
            resources[name] = resources.get(name, 0.0) + amount * copies
        for key, label in s.labels.items():
            if not label.startswith(("!", "in(")):
                labels.setdefault(key, label)
    out: dict[str, Any] = {"num_cpus": max(os.cpu_count() or 1, math.ceil(need_cpus))}
    if resources:
        out["resources"] = resources
    if labels:
        out["labels"] = labels
    return out
