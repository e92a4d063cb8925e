"""The Ray launcher's parts that need no cluster: scenario checks (one line each, at validate
time), resources → Ray's options, which nodes fit, and the supervisor's process handling
(output, ordered control, and a child that dies with its supervisor even when paused)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from agentsim.run.launchers.base import exit_detail, placement
from agentsim.run.launchers.ray.placement import (
    actor_options,
    bundles,
    describe_need,
    describe_nodes,
    fitting_nodes,
)
from agentsim.run.launchers.ray.supervisor import AgentSupervisor
from agentsim.scenario.errors import ScenarioError
from agentsim.scenario.resources import memory_bytes
from agentsim.scenario.schema import ResourcesSpec
from agentsim.scenario.validate import parse_scenario, ray_installed
from agentsim.testing import pid_alive, wait_for

BASE = """[run]
launcher = "ray"
{run}
[agents.a]
engine = "scripted"
{agent}
[agents.b]
engine = "scripted"
[protocol]
kind = "vote"
"""


def check(run: str = "", agent: str = "") -> str:
    """The one error line for a Ray scenario, or ``"ok"``."""
    try:
        parse_scenario(BASE.format(run=run, agent=agent), "s.toml", base_dir=Path.cwd())
    except ScenarioError as e:
        return str(e)
    return "ok"


needs_ray = pytest.mark.skipif(not ray_installed(), reason="Ray is not installed (agentsim[ray])")


@needs_ray
@pytest.mark.parametrize(
    ("run", "agent", "line"),
    [
        (
            'transport = "ipc"',
            "",
            "run.transport must be tcp with launcher = 'ray' (agents on other nodes connect over "
            "CURVE TCP), got 'ipc' (s.toml:3)",
        ),
        (
            'bind = "ipc:///tmp/x"',
            "",
            "run.bind must be tcp with launcher = 'ray' (agents on other nodes connect over "
            "CURVE TCP), got 'ipc:///tmp/x' (s.toml:3)",
        ),
        (
            'ray_address = "http://head"',
            "",
            "run.ray_address must be auto, local, HOST:PORT or ray://HOST:PORT, "
            "got 'http://head' (s.toml:3)",
        ),
        (
            "",
            "resources = { num_cpus = 1.5 }",
            "agents.a.resources.num_cpus must be a whole number when above 1 (Ray's rule for "
            "resource quantities), got 1.5 (s.toml:6)",
        ),
        (
            "",
            "resources = { custom = { GPU = 1 } }",
            "agents.a.resources.custom.GPU is one of Ray's own resources: use "
            "num_cpus/num_gpus/memory, got 1.0 (s.toml:6)",
        ),
        (
            "",
            'resources = { memory = "12 parsecs" }',
            "agents.a.resources.memory must be bytes or a number with a unit (B, KB, MB, GB, "
            "TB, KiB, MiB, GiB, TiB), got '12 parsecs' (s.toml:6)",
        ),
        (
            'placement = "spread"',
            "resources = { num_cpus = 0 }",
            "agents.a.resources must ask for some resource when run.placement = 'spread' (a "
            "placement-group bundle cannot be empty), got a table (s.toml:6)",
        ),
        (
            "",
            "resources = { num_gpus = -1 }",
            "agents.a.resources.num_gpus must be >= 0.0, got -1 (s.toml:6)",
        ),
    ],
)
def test_ray_scenario_mistakes_are_one_line_at_validate_time(
    run: str, agent: str, line: str
) -> None:
    assert check(run, agent) == line


@needs_ray
def test_a_ray_run_may_bind_beyond_loopback_without_key_files() -> None:
    # it makes its own CURVE keys: a server pair per run and one pair per agent name
    assert (
        check('bind = "tcp://0.0.0.0:5555"\nplacement = "pack"', 'resources = { memory = "1GiB" }')
        == "ok"
    )
    assert check('ray_address = "ray://10.0.0.1:10001"') == "ok"
    assert check('ray_address = "local"') == "ok"


def test_without_ray_launcher_ray_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(BASE.format(run="", agent=""))
    code = "import sys; sys.modules['ray'] = None; from agentsim.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "validate", str(tmp_path / "s.toml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"agentsim: error: run.launcher needs Ray, which is not installed: "
        f"pip install \"agentsim[ray]\", got 'ray' ({tmp_path / 's.toml'}:2)\n"
    )


def test_memory_units() -> None:
    assert memory_bytes(1000) == 1000
    assert memory_bytes("512MiB") == 512 * 2**20
    assert memory_bytes("2GB") == 2 * 10**9
    assert memory_bytes(" 1.5 gib ") == int(1.5 * 2**30)
    for bad in ("", "GiB", "1 GiBs", "-1MB", "1e9"):
        with pytest.raises(ValueError, match="must be bytes or a number with a unit"):
            memory_bytes(bad)


def test_resources_become_ray_options_and_bundles() -> None:
    spec = ResourcesSpec(
        num_cpus=2, num_gpus=0.5, memory="1GiB", custom={"node_a": 1}, labels={"zone": "a"}
    )
    opts = actor_options(spec)
    assert opts["num_cpus"] == 2 and opts["num_gpus"] == 0.5 and opts["memory"] == 2**30
    assert opts["resources"] == {"node_a": 1} and opts["label_selector"] == {"zone": "a"}
    assert opts["max_restarts"] == 0 and opts["max_task_retries"] == 0
    in_group = actor_options(spec, bundle=("STRATEGY", 2))
    assert in_group["scheduling_strategy"] == "STRATEGY" and "label_selector" not in in_group
    shapes, labels = bundles([spec, ResourcesSpec(num_cpus=0, custom={"x": 1})])
    assert shapes == [{"CPU": 2, "GPU": 0.5, "memory": float(2**30), "node_a": 1}, {"x": 1}]
    assert labels == [{"zone": "a"}, {}]
    assert (
        describe_need(spec) == "CPU 2, GPU 0.5, memory 1.07374e+09, node_a 1, labels {'zone': 'a'}"
    )


def test_only_live_nodes_with_the_resources_and_labels_fit() -> None:
    nodes = [
        {"NodeID": "aaa", "Alive": True, "NodeManagerAddress": "127.0.0.1",
         "Resources": {"CPU": 4.0, "node_a": 1.0}, "Labels": {"zone": "a"}},
        {"NodeID": "bbb", "Alive": True, "NodeManagerAddress": "127.0.0.1",
         "Resources": {"CPU": 1.0, "node_b": 1.0}, "Labels": {}},
        {"NodeID": "ccc", "Alive": False, "Resources": {"CPU": 64.0, "node_c": 1.0}},
    ]  # fmt: skip
    assert fitting_nodes(ResourcesSpec(num_cpus=2), nodes) == ["aaa"]
    assert fitting_nodes(ResourcesSpec(custom={"node_b": 1}), nodes) == ["bbb"]
    assert fitting_nodes(ResourcesSpec(custom={"node_c": 1}), nodes) == []  # only a dead node
    assert fitting_nodes(ResourcesSpec(labels={"zone": "a"}), nodes) == ["aaa"]
    assert fitting_nodes(ResourcesSpec(labels={"zone": "b"}), nodes) == []
    assert fitting_nodes(ResourcesSpec(labels={"zone": "!b"}), nodes) == ["aaa", "bbb"]
    assert describe_nodes(nodes) == (
        "aaa (127.0.0.1): CPU 4, node_a 1, labels {'zone': 'a'}; bbb (127.0.0.1): CPU 1, node_b 1"
    )


def test_handles_without_a_node_have_no_placement() -> None:
    class Plain:
        pid = 1

    class Placed:
        node = {"node_id": "n1", "node_ip": "127.0.0.1"}  # noqa: RUF012
        exit_detail = "Ray lost it"

    assert placement(Plain()) == {} and exit_detail(Plain()) == ""  # type: ignore[arg-type]
    assert placement(Placed()) == {"node_id": "n1", "node_ip": "127.0.0.1"}  # type: ignore[arg-type]
    assert exit_detail(Placed()) == "Ray lost it"  # type: ignore[arg-type]


def _supervise(sup: AgentSupervisor, args: list[str]) -> None:
    started = threading.Event()
    env = dict(os.environ, AGENTSIM_CHILD="1")
    threading.Thread(target=sup._own, args=(args, env, started), daemon=True).start()
    assert started.wait(10) and sup.proc is not None


def test_supervisor_hands_out_the_agents_output_then_its_exit_code() -> None:
    sup = AgentSupervisor("x")
    _supervise(
        sup,
        [
            "agent",
            "--connect",
            "ipc:///nonexistent/bus",
            "--name",
            "x",
            "--configure-timeout",
            "0.3",
        ],
    )
    offset, text, code = 0, b"", None
    deadline = time.monotonic() + 30
    while code is None and time.monotonic() < deadline:
        data, code, at = sup.next_log(offset, 5.0)
        assert at == offset  # nothing dropped
        text += data
        offset = at + len(data)
    assert code is not None and code != 0
    assert b"agent" in text and text.count(b"\n") >= 1
    assert sup.next_log(offset, 0.1) == (b"", code, offset)  # at the end: no more, same code


def test_supervisor_applies_control_in_the_order_sent() -> None:
    sup = AgentSupervisor("x")
    _supervise(
        sup,
        [
            "agent",
            "--connect",
            "ipc:///nonexistent/bus",
            "--name",
            "x",
            "--configure-timeout",
            "60",
        ],
    )
    assert sup.proc is not None
    # Sent 0 (pause), 1 (resume), 2 (stop) but they arrive 2, 1, 0 on the actor's threads.
    results: dict[int, int | None] = {}
    calls = [
        (2, "stop", 2.0),
        (1, "signal", float(signal.SIGCONT)),
        (0, "signal", float(signal.SIGSTOP)),
    ]
    threads = [
        threading.Thread(target=lambda c=c: results.__setitem__(c[0], sup.control(*c)))
        for c in calls
    ]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(30)
    # Applied in order 0, 1, 2: stopped then continued, then terminated by SIGTERM (not
    # left paused, which would have needed SIGKILL).
    assert results[2] == -signal.SIGTERM


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def test_an_agent_dies_with_its_supervisor_even_when_paused(tmp_path: Path) -> None:
    script = tmp_path / "sup.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, threading, time
            from agentsim.run.launchers.ray.supervisor import AgentSupervisor
            sup = AgentSupervisor("x")
            started = threading.Event()
            args = ["agent", "--connect", "ipc:///nonexistent/bus", "--name", "x",
                    "--configure-timeout", "120"]
            threading.Thread(target=sup._own, args=(args, dict(os.environ), started),
                             daemon=True).start()
            started.wait()
            print(sup.proc.pid, flush=True)
            time.sleep(120)
            """
        )
    )
    sup = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert sup.stdout is not None
        child = int(sup.stdout.readline())
        # past the prelude (PDEATHSIG armed, then exec): the process is the agent now
        assert wait_for(lambda: cmdline(child)[1:3] == ["-m", "agentsim"], 20), cmdline(child)
        os.kill(child, signal.SIGSTOP)
        sup.kill()
        sup.wait()
        assert wait_for(lambda: not pid_alive(child), 10), f"agent {child} outlived its supervisor"
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        if sup.stdout is not None:
            sup.stdout.close()
