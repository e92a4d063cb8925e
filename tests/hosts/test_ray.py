"""The Ray launcher on a real multi-node Ray cluster (``ray.cluster_utils.Cluster``: a head and
two worker nodes with distinct custom resources), all inside a loopback-only network
namespace — the cluster, the runner and its agents. Skips with the reason where Ray is not
installed or namespaces are not permitted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentsim.testing import journal, only_run_dir, wait_for

# The suite runs with --import-mode=importlib: make the helper module next to us importable.
sys.path.insert(0, str(Path(__file__).parent))
from ray_fixtures import (
    AGENTSIM,
    RayCluster,
    agent_processes,
    loopback_namespace,
    processes_with,
    ray_cluster,
)

pytestmark = pytest.mark.slow

STABLE = ("task_id", "answer", "extracted", "gold", "correct", "completed", "rounds", "by")
STABLE += ("prompt_tokens", "completion_tokens", "failures")


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with ray_cluster() as c:
        yield c


def debate(address: str, *, tasks: int, latency: float = 0.0, launcher: str = "ray") -> str:
    """Three scripted agents, each pinned to its own node (a custom resource, a custom
    resource, a node label)."""
    lat = f", latency_s = {latency}" if latency else ""
    return f"""
[run]
name = "raydebate"
launcher = "{launcher}"
ray_address = "{address}"
heartbeat_s = 0.2
heartbeat_misses = 10
ready_timeout_s = 120
[tasks]
suite = "gsm8k"
limit = {tasks}
[agents.alice]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.3{lat} }}
resources = {{ num_cpus = 1, custom = {{ node_a = 1 }} }}
[agents.bob]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.5{lat} }}
resources = {{ num_cpus = 1, custom = {{ node_b = 1 }} }}
[agents.carol]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.2{lat} }}
resources = {{ num_cpus = 1, labels = {{ agentsim-node = "head" }} }}
[protocol]
kind = "debate"
rounds = 2
deadline_s = 30
"""


def results(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return [{k: r[k] for k in STABLE} for r in map(json.loads, lines)]


def events(run_dir: Path, name: str) -> list[dict[str, Any]]:
    return [r for r in journal(run_dir) if r["event"] == name]


def no_leftovers(cluster: RayCluster, run_id: str) -> bool:
    return not agent_processes(run_id) and not cluster.supervisors()


def test_debate_pinned_to_three_nodes_matches_the_local_launcher(
    cluster: RayCluster, tmp_path: Path
) -> None:
    (tmp_path / "ray.toml").write_text(debate(cluster.address, tasks=6))
    (tmp_path / "local.toml").write_text(debate(cluster.address, tasks=6, launcher="local"))
    done = cluster.agentsim("run", str(tmp_path / "ray.toml"), "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr[-3000:]
    local = subprocess.run(
        [*AGENTSIM, "run", str(tmp_path / "local.toml"), "--out", str(tmp_path / "l")],
        capture_output=True,
        text=True,
    )
    assert local.returncode == 0, local.stderr[-3000:]
    on_ray, on_host = only_run_dir(tmp_path / "r"), only_run_dir(tmp_path / "l")

    ready = {r["agent"]: r for r in events(on_ray, "agent_ready")}
    assert {a: r["node_id"] for a, r in ready.items()} == {
        "alice": cluster.nodes["node_a"],
        "bob": cluster.nodes["node_b"],
        "carol": cluster.nodes["head"],
    }
    assert {r["node_ip"] for r in ready.values()} == {"127.0.0.1"}
    assert all("node_id" not in r for r in events(on_host, "agent_ready"))
    # The same answers, votes, rounds and failures, task by task.
    assert results(on_ray) == results(on_host)
    assert len(results(on_ray)) == 6
    start = events(on_ray, "run_start")[0]
    assert start["endpoint"].startswith("tcp://127.0.0.1:")
    # Each agent's own log came back into the run folder.
    for name in ("alice", "bob", "carol"):
        log = (on_ray / "logs" / f"{name}.log").read_text()
        assert '"agent_placed"' in log and '"agent_ready"' in log and '"agent_exit"' in log
        assert str(cluster.cache({"alice": "node_a", "bob": "node_b"}.get(name, "head"))) in log
    run_id = start["run_id"]
    assert wait_for(lambda: no_leftovers(cluster, run_id), 20), (
        agent_processes(run_id),
        cluster.supervisors(),
    )


def test_node_lost_mid_run_is_an_agent_crash_and_the_run_completes(
    cluster: RayCluster, tmp_path: Path
) -> None:
    (tmp_path / "s.toml").write_text(debate(cluster.address, tasks=8, latency=0.15))
    runner = cluster.start_agentsim("run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "r"))
    try:
        assert wait_for(lambda: (tmp_path / "r").exists() and any((tmp_path / "r").iterdir()), 60)
        run_dir = only_run_dir(tmp_path / "r")
        assert wait_for(lambda: len(events(run_dir, "task_result")) >= 2, 120), runner.poll()
        bob = next(r for r in events(run_dir, "agent_ready") if r["agent"] == "bob")
        assert cluster.command("remove node_b") == {"removed": "node_b"}
        _out, err = runner.communicate(timeout=180)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        cluster.command("add node_b")
    assert runner.returncode == 0, err[-3000:]
    crashes = [f for f in events(run_dir, "failure") if f["kind"] == "agent_crash"]
    assert {tuple(c["agents"]) for c in crashes} == {("bob",)}, crashes
    # One crash for the agent (with what Ray said), then each later task records bob is down.
    lost = [c for c in crashes if "exited with code" in c["detail"] and not c.get("task_id")]
    assert len(lost) == 1, crashes
    assert "Ray lost" in lost[0]["detail"] and bob["node_id"][:12] in lost[0]["detail"]
    assert [e["code"] for e in events(run_dir, "agent_exit") if e["agent"] == "bob"] == [-1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks_done"] == 8 and not summary.get("partial")
    after = results(run_dir)[-1]
    assert after["completed"] and after["answer"]  # the others went on without bob
    assert '"agent_lost"' in (run_dir / "logs" / "bob.log").read_text()
    run_id = events(run_dir, "run_start")[0]["run_id"]
    assert wait_for(lambda: no_leftovers(cluster, run_id), 30), (
        agent_processes(run_id),
        cluster.supervisors(),
    )


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "runner-killed"])
def test_stopping_the_runner_leaves_no_agent_or_actor(
    cluster: RayCluster, tmp_path: Path, how: signal.Signals
) -> None:
    (tmp_path / "s.toml").write_text(debate(cluster.address, tasks=50, latency=0.5))
    runner = cluster.start_agentsim("run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "r"))
    try:
        assert wait_for(lambda: (tmp_path / "r").exists() and any((tmp_path / "r").iterdir()), 60)
        run_dir = only_run_dir(tmp_path / "r")
        assert wait_for(lambda: events(run_dir, "task_start"), 120), runner.poll()
        run_id = events(run_dir, "run_start")[0]["run_id"]
        assert len(agent_processes(run_id)) == 3 and len(cluster.supervisors()) == 3
        runner.send_signal(how)
        runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == (130 if how == signal.SIGINT else -signal.SIGKILL)
    assert wait_for(lambda: no_leftovers(cluster, run_id), 45), (
        agent_processes(run_id),
        cluster.supervisors(),
    )


def sweep_text(address: str, launcher: str) -> str:
    return f"""
[run]
name = "raysweep"
launcher = "{launcher}"
ray_address = "{address}"
heartbeat_s = 0.5
ready_timeout_s = 120
[tasks]
suite = "gsm8k"
limit = 3
[agents.a]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.4 }}
resources = {{ num_cpus = 0.5 }}
[agents.b]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.3 }}
resources = {{ num_cpus = 0.5 }}
[agents.c]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.2 }}
resources = {{ num_cpus = 0.5 }}
[protocol]
kind = "vote"
agents = ["a", "b", "c"]
[[sweep.configs]]
name = "vote"
[[sweep.configs]]
name = "solo"
protocol = {{ kind = "solo", agents = ["b"] }}
[sweep.axes]
"run.seed" = [1, 2]
"""


def by_config(parent: Path) -> dict[str, list[dict[str, Any]]]:
    return {r.name.rsplit("-", 2)[0]: results(r) for r in sorted(parent.iterdir()) if r.is_dir()}


def test_sweep_in_parallel_as_ray_tasks_matches_a_serial_local_sweep(
    cluster: RayCluster, tmp_path: Path
) -> None:
    (tmp_path / "ray.toml").write_text(sweep_text(cluster.address, "ray"))
    (tmp_path / "local.toml").write_text(sweep_text(cluster.address, "local"))
    done = cluster.agentsim(
        "run", str(tmp_path / "ray.toml"), "--out", str(tmp_path / "r"), "--parallel", "2"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    local = subprocess.run(
        [*AGENTSIM, "run", str(tmp_path / "local.toml"), "--out", str(tmp_path / "l")],
        capture_output=True,
        text=True,
    )
    assert local.returncode == 0, local.stderr[-3000:]
    (ray_parent,) = (tmp_path / "r").iterdir()
    (local_parent,) = (tmp_path / "l").iterdir()
    got, want = by_config(ray_parent), by_config(local_parent)
    assert sorted(got) == ["solo-seed_1", "solo-seed_2", "vote-seed_1", "vote-seed_2"]
    assert got == want
    assert (ray_parent / "comparison.md").exists()
    assert done.stderr.count("(on Ray)") == 4
    for run in (r for r in ray_parent.iterdir() if r.is_dir()):
        ready = events(run, "agent_ready")
        assert ready and all(r["node_id"] in cluster.nodes.values() for r in ready)
        assert (run / "report.md").exists() and (run / "logs" / "runner.log").exists()
        run_id = events(run, "run_start")[0]["run_id"]
        assert wait_for(lambda run_id=run_id: no_leftovers(cluster, run_id), 20)


def placed_text(address: str, placement: str) -> str:
    agents = "".join(
        f'[agents.{n}]\nengine = "scripted"\noptions = {{ table = "gsm8k" }}\n'
        f"resources = {{ num_cpus = 1 }}\n"
        for n in ("p", "q", "r")
    )
    return (
        f'[run]\nname = "placed"\nlauncher = "ray"\nray_address = "{address}"\n'
        f'placement = "{placement}"\nready_timeout_s = 120\n'
        f'[tasks]\nsuite = "gsm8k"\nlimit = 2\n{agents}[protocol]\nkind = "vote"\n'
    )


@pytest.mark.parametrize(("placement", "nodes"), [("strict_spread", 3), ("strict_pack", 1)])
def test_a_placement_group_spreads_or_packs_the_agents(
    cluster: RayCluster, tmp_path: Path, placement: str, nodes: int
) -> None:
    (tmp_path / "s.toml").write_text(placed_text(cluster.address, placement))
    done = cluster.agentsim("run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr[-3000:]
    ready = events(only_run_dir(tmp_path / "r"), "agent_ready")
    assert len(ready) == 3 and len({r["node_id"] for r in ready}) == nodes
    assert not cluster.supervisors()


def test_resources_no_node_has_are_one_clear_line_before_anything_starts(
    cluster: RayCluster, tmp_path: Path
) -> None:
    text = debate(cluster.address, tasks=2).replace("node_b = 1", "node_c = 1")
    (tmp_path / "s.toml").write_text(text)
    done = cluster.agentsim("run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(
        f"agentsim: error: agents.bob.resources: no live node of the Ray cluster at "
        f"{cluster.address} can hold CPU 1, node_c 1; its nodes: "
    ), line
    assert "node_a 100" in line and "node_b 100" in line
    assert not cluster.supervisors()


@pytest.mark.model
def test_the_model_compiles_once_per_node_into_that_nodes_own_cache(
    cluster: RayCluster, tmp_path: Path
) -> None:
    from agentsim.engines.mlc.models import model_path

    gguf = model_path("smollm2-135m-instruct")  # fetched out here: the namespace has no network
    agents = "".join(
        f'[agents.{name}]\nmodel = "{gguf}"\nmax_tokens = 24\n'
        f"resources = {{ num_cpus = 1, custom = {{ {node} = 1 }} }}\n"
        for name, node in (("m1", "node_a"), ("m2", "node_a"), ("m3", "node_b"))
    )
    (tmp_path / "s.toml").write_text(
        f'[run]\nname = "raymodel"\nlauncher = "ray"\nray_address = "{cluster.address}"\n'
        f'ready_timeout_s = 900\n[tasks]\nsuite = "gsm8k"\nlimit = 1\n{agents}'
        '[protocol]\nkind = "vote"\ndeadline_s = 300\n'
    )
    done = cluster.agentsim("run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "r")
    ready = {r["agent"]: r for r in events(run_dir, "agent_ready")}
    assert ready["m1"]["node_id"] == ready["m2"]["node_id"] == cluster.nodes["node_a"]
    assert ready["m3"]["node_id"] == cluster.nodes["node_b"]
    assert all(r["engine"] == "mlc" for r in ready.values())
    assert results(run_dir)[0]["completion_tokens"] > 0

    def artifacts(node: str) -> list[str]:
        root = cluster.cache(node) / "artifacts"
        return (
            sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
            if root.exists()
            else []
        )

    # One build per node, in that node's own cache; the head ran no model agent.
    assert len(artifacts("node_a")) == 1 and artifacts("node_a") == artifacts("node_b")
    assert artifacts("head") == []
    built = {
        n: (run_dir / "logs" / f"{n}.log").read_text().count('"mlc_artifact_built"') for n in ready
    }
    assert built["m1"] + built["m2"] == 1 and built["m3"] == 1, built


def test_ray_address_local_starts_a_cluster_for_the_run_and_stops_it(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    root = Path(tempfile.mkdtemp(prefix="rl", dir="/tmp"))
    try:
        with loopback_namespace("raylocal") as ns:
            text = debate("local", tasks=2)  # pinned to node_a / node_b / a label: all provided
            (tmp_path / "s.toml").write_text(text)
            env = dict(os.environ, RAY_TMPDIR=str(root), RAY_memory_monitor_refresh_ms="0")
            done = subprocess.run(
                ["ip", "netns", "exec", ns, *AGENTSIM, "run", str(tmp_path / "s.toml"),
                 "--out", str(tmp_path / "r")],
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            ready = events(only_run_dir(tmp_path / "r"), "agent_ready")
            assert len(ready) == 3 and len({r["node_id"] for r in ready}) == 1
            assert wait_for(lambda: not processes_with("RAY_TMPDIR", str(root)), 60), (
                processes_with("RAY_TMPDIR", str(root))
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
