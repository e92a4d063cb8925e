"""A real multi-node Ray cluster on this machine, held by one process the tests talk to.

Run inside a network namespace that has only ``lo`` (there Ray binds 127.0.0.1; outside it
Ray 2.x picks the machine's own interface address whatever it is told)::

    ip netns exec NS python tests/hosts/ray_cluster.py CONFIG.json

It starts a ``ray.cluster_utils.Cluster`` (a head and the worker nodes named in the config,
each with its own custom resource, label and node-local ``AGENTSIM_CACHE``), prints one JSON
line (``{"address": ..., "nodes": {name: node_id}}``), then serves commands from stdin, one
per line, answering each with one JSON line: ``remove NAME`` (hard: the node's raylet is
killed, as when a host dies), ``add NAME``, ``quit`` (shut everything down).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# A loaded 2-core machine (CI) starts Ray's processes slowly: give its start-up waits room.
# The memory monitor judges the whole machine's memory (other users' too): off.
for key, value in {
    "RAY_raylet_start_wait_time_s": "180",
    "RAY_agent_register_timeout_ms": "180000",
    "RAY_worker_register_timeout_seconds": "180",
    "RAY_memory_monitor_refresh_ms": "0",
}.items():
    os.environ.setdefault(key, value)

from ray.cluster_utils import Cluster  # noqa: E402 - after the environment is set


def node_args(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    spec = cfg["nodes"][name]
    return {
        "num_cpus": spec.get("num_cpus", 4),
        "resources": {name: spec.get("slots", 100)},
        "labels": {"agentsim-node": name},
        "object_store_memory": 80 * 2**20,
        "include_dashboard": False,
        "env_vars": {"AGENTSIM_CACHE": str(Path(cfg["cache_root"]) / name)},
    }


def start(
    cfg: dict[str, Any], head_args: dict[str, Any], head: str, workers: list[str]
) -> tuple[Cluster, dict[str, Any]]:
    """The cluster up, every node registered. On a loaded machine a node's start can time out
    inside Ray (its raylet waits a fixed time for the node's agent); that is tried twice more."""
    for attempt in range(3):
        cluster = Cluster()
        try:
            nodes = {head: cluster.add_node(**head_args)}
            for name in workers:
                nodes[name] = cluster.add_node(**node_args(cfg, name))
            cluster.wait_for_nodes()
            return cluster, nodes
        except Exception as e:
            print(f"cluster start failed (attempt {attempt + 1}): {e}", file=sys.stderr)
            cluster.shutdown()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def main() -> int:
    cfg = json.loads(Path(sys.argv[1]).read_text())
    names = list(cfg["nodes"])
    head, workers = names[0], names[1:]
    head_args = node_args(cfg, head)
    if cfg.get("quick_health_checks", True):
        # A lost node is noticed in ~5 s instead of Ray's default ~30 s, yet a raylet stalled
        # by a loaded machine for a few seconds is not declared dead.
        head_args["_system_config"] = {
            "health_check_initial_delay_ms": 0,
            "health_check_period_ms": 1000,
            "health_check_timeout_ms": 2000,
            "health_check_failure_threshold": 5,
        }
    cluster, nodes = start(cfg, head_args, head, workers)

    def say(**fields: Any) -> None:
        print(json.dumps(fields), flush=True)

    say(address=cluster.address, nodes={n: node.node_id for n, node in nodes.items()})
    try:
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "remove" and arg in nodes and arg != head:
                cluster.remove_node(nodes.pop(arg), allow_graceful=False)
                say(removed=arg)
            elif cmd == "add" and arg in cfg["nodes"] and arg not in nodes:
                nodes[arg] = cluster.add_node(**node_args(cfg, arg))
                cluster.wait_for_nodes()
                say(added=arg, node_id=nodes[arg].node_id)
            elif cmd == "quit":
                break
            else:
                say(error=f"unknown command {line.strip()!r}")
    finally:
        cluster.shutdown()
    say(stopped=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
