"""Runs across hosts: CURVE-authenticated tcp, remote agents, refusals journaled.

The multi-host test puts agents in network namespaces it creates itself (veth pairs on a
private /30 per namespace) and skips with a reason where namespaces are not permitted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentsim.testing import journal, only_run_dir, wait_for

AGENTSIM = [sys.executable, "-m", "agentsim"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scenario(tmp: Path, bind: str, extra_agents: str = "", ready: float = 30) -> Path:
    f = tmp / "s.toml"
    f.write_text(f"""
[run]
name = "hosts"
transport = "tcp"
bind = "{bind}"
server_key = "keys/runner.key_secret"
allowed_keys = ["keys/alice.key", "keys/bob.key"]
ready_timeout_s = {ready}
heartbeat_s = 0.2
[tasks]
suite = "gsm8k"
limit = 3
[agents.alice]
engine = "scripted"
remote = true
options = {{ table = "gsm8k" }}
[agents.bob]
engine = "scripted"
remote = true
options = {{ table = "gsm8k" }}
[agents.carol]
engine = "scripted"
options = {{ table = "gsm8k" }}
{extra_agents}
[protocol]
kind = "vote"
""")
    return f


def agent_cmd(endpoint: str, name: str, key: Path, server: Path, wait: float = 30) -> list[str]:
    return [
        *AGENTSIM,
        "agent",
        "--connect",
        endpoint,
        "--name",
        name,
        "--key",
        str(key),
        "--server-key",
        str(server),
        "--configure-timeout",
        str(wait),
    ]


def test_remote_agents_join_over_curve_and_an_unknown_key_is_refused(
    tmp_path: Path, keys: Path, procs: list
) -> None:
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    f = scenario(tmp_path, endpoint)
    runner = subprocess.Popen(
        [*AGENTSIM, str(f), "--out", "runs", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    procs.append(runner)
    assert wait_for(lambda: (tmp_path / "runs").exists() and any((tmp_path / "runs").iterdir()), 20)
    run = only_run_dir(tmp_path / "runs")
    assert wait_for(lambda: any(r["event"] == "agent_ready" for r in journal(run)), 20)
    impostor = subprocess.Popen(
        agent_cmd(
            endpoint, "bob", tmp_path / "impostor" / "bob.key_secret", keys / "runner.key", wait=3
        )
    )
    procs.append(impostor)
    assert wait_for(lambda: any(r["event"] == "agent_refused" for r in journal(run)), 20)
    for name in ("alice", "bob"):
        procs.append(
            subprocess.Popen(
                agent_cmd(endpoint, name, keys / f"{name}.key_secret", keys / "runner.key")
            )
        )
    _out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    recs = journal(run)
    refused = [r for r in recs if r["event"] == "agent_refused"]
    assert refused and "unknown public key" in refused[0]["reason"]
    ready = {r["agent"] for r in recs if r["event"] == "agent_ready"}
    assert ready == {"alice", "bob", "carol"}
    assert len((run / "results.jsonl").read_text().splitlines()) == 3
    # the impostor never got a Configure: it gives up by itself
    assert impostor.wait(timeout=20) != 0


def test_an_allowed_key_claiming_another_agent_is_refused_and_journaled(
    tmp_path: Path, keys: Path, procs: list
) -> None:
    """alice's key, used to pose as bob by a raw socket that also squats the socket identity
    ``bob`` before bob connects: every frame is refused and journaled with the name the key is
    bound to, the real bob joins, and the impostor hears nothing. (The agent CLI refuses to
    start with a key bound to another name.)"""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    f = scenario(tmp_path, endpoint)
    runner = subprocess.Popen(
        [*AGENTSIM, str(f), "--out", "runs", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    procs.append(runner)
    assert wait_for(lambda: (tmp_path / "runs").exists() and any((tmp_path / "runs").iterdir()), 20)
    run = only_run_dir(tmp_path / "runs")
    assert wait_for(lambda: any(r["event"] == "agent_ready" for r in journal(run)), 20)
    stop = tmp_path / "stop"
    impostor = [sys.executable, str(Path(__file__).parent / "impostor.py"), endpoint]
    squatter = subprocess.Popen(
        [*impostor, str(keys / "alice.key_secret"), str(keys / "runner.key"), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    procs.append(squatter)
    # the agent CLI will not even try
    posing = subprocess.run(
        agent_cmd(endpoint, "bob", keys / "alice.key_secret", keys / "runner.key", wait=3),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert posing.returncode == 2
    assert posing.stderr.strip() == (
        f"agentsim agent: error: --key {keys / 'alice.key_secret'} is bound to agent 'alice', "
        "not --name 'bob'"
    )
    assert wait_for(lambda: sum(r["event"] == "refused" for r in journal(run)) >= 3, 20)
    for name in ("alice", "bob"):
        procs.append(
            subprocess.Popen(
                agent_cmd(endpoint, name, keys / f"{name}.key_secret", keys / "runner.key")
            )
        )
    _out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    stop.touch()
    out, _ = squatter.communicate(timeout=20)
    assert out.strip() == "0"  # nothing meant for bob (or anyone) reached the squatter
    recs = journal(run)
    forged = [r for r in recs if r["event"] == "refused"]
    assert [(r["src"], r["claimed"], r["kind"]) for r in forged] == [
        ("alice", "bob", "hello"),
        ("alice", "bob", "peer"),
        ("alice", "runner", "heartbeat"),
    ]
    assert all("is not the sender 'alice'" in r["reason"] for r in forged)
    failures = [r for r in recs if r["event"] == "failure" and r["kind"] == "refused_message"]
    assert len(failures) == len(forged) and all(f["agents"] == ["alice"] for f in failures)
    hellos = [r for r in recs if r["event"] == "agent_hello"]
    assert sorted(h["agent"] for h in hellos) == ["alice", "bob", "carol"]
    assert len((run / "results.jsonl").read_text().splitlines()) == 3


def test_remote_agent_that_never_connects_gives_a_clear_error(tmp_path: Path, keys: Path) -> None:
    f = scenario(tmp_path, f"tcp://127.0.0.1:{free_port()}", ready=1.5)
    p = subprocess.run(
        [*AGENTSIM, str(f), "--out", "runs", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1
    assert (
        "remote agent alice did not connect within run.ready_timeout_s=1.5s; start it with: "
        "python -m agentsim agent --connect tcp://127.0.0.1:" in p.stderr
    )
    assert "Traceback" not in p.stderr


def test_binding_beyond_loopback_without_keys_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        '[run]\ntransport = "tcp"\nbind = "tcp://0.0.0.0:5555"\n[agents.a]\nengine = "scripted"\n'
    )
    p = subprocess.run([*AGENTSIM, "validate", str(f)], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip() == (
        "agentsim: error: run.bind is not a loopback address, so it needs CURVE keys (run.server_key, "
        f"run.allowed_keys) or an explicit insecure = true, got 'tcp://0.0.0.0:5555' ({f}:3)"
    )


def _netns_ok() -> str:
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = subprocess.run(["ip", "netns", "add", "agentsim-probe"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns not permitted here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", "agentsim-probe"], capture_output=True)
    return ""


@pytest.fixture
def namespaces() -> list[tuple[str, str, str]]:
    """Two namespaces, each a 'host' on its own veth /30: (name, host-side ip, ns-side ip)."""
    why = _netns_ok()
    if why:
        pytest.skip(why)
    made: list[tuple[str, str, str]] = []
    tag = os.getpid() % 10000
    try:
        for i in (1, 2):
            ns, host_if, ns_if = f"as{tag}n{i}", f"as{tag}h{i}", f"as{tag}c{i}"
            host_ip, ns_ip = f"10.231.{i}.1", f"10.231.{i}.2"
            for cmd in (
                ["ip", "netns", "add", ns],
                ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
                ["ip", "link", "set", ns_if, "netns", ns],
                ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
                ["ip", "link", "set", host_if, "up"],
                ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if],
                ["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"],
                ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
            ):
                subprocess.run(cmd, check=True, capture_output=True)
            made.append((ns, host_ip, ns_ip))
        yield made
    finally:
        for i, (ns, _, _) in enumerate(made, start=1):
            subprocess.run(["ip", "link", "del", f"as{tag}h{i}"], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_agents_in_other_network_namespaces_join_with_keys_and_a_wrong_key_is_refused(
    tmp_path: Path, keys: Path, namespaces: list[tuple[str, str, str]], procs: list
) -> None:
    (ns1, host1, _), (ns2, host2, _) = namespaces
    port = free_port()
    # the runner binds every address; each namespace reaches it over its own veth link
    f = scenario(tmp_path, f"tcp://0.0.0.0:{port}")
    runner = subprocess.Popen(
        [*AGENTSIM, str(f), "--out", "runs", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    procs.append(runner)
    assert wait_for(lambda: (tmp_path / "runs").exists() and any((tmp_path / "runs").iterdir()), 20)
    run = only_run_dir(tmp_path / "runs")
    wrong = [
        "ip",
        "netns",
        "exec",
        ns2,
        *agent_cmd(
            f"tcp://{host2}:{port}",
            "bob",
            tmp_path / "impostor" / "bob.key_secret",
            keys / "runner.key",
        ),
    ]
    procs.append(subprocess.Popen(wrong))
    assert wait_for(lambda: any(r["event"] == "agent_refused" for r in journal(run)), 20)
    refused = next(r for r in journal(run) if r["event"] == "agent_refused")
    assert refused["address"] == namespaces[1][2]  # the refusal names the other host's address
    # from the other host, alice's (allowed) key posing as bob: refused frame by frame
    stop = tmp_path / "stop"
    posing = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns2,
            sys.executable,
            str(Path(__file__).parent / "impostor.py"),
            f"tcp://{host2}:{port}",
            str(keys / "alice.key_secret"),
            str(keys / "runner.key"),
            str(stop),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    procs.append(posing)
    assert wait_for(lambda: sum(r["event"] == "refused" for r in journal(run)) == 3, 20)
    forged = [r for r in journal(run) if r["event"] == "refused"]
    assert {(r["src"], r["claimed"]) for r in forged} == {("alice", "bob"), ("alice", "runner")}
    procs.append(
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns1,
                *agent_cmd(
                    f"tcp://{host1}:{port}", "alice", keys / "alice.key_secret", keys / "runner.key"
                ),
            ]
        )
    )
    procs.append(
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns2,
                *agent_cmd(
                    f"tcp://{host2}:{port}", "bob", keys / "bob.key_secret", keys / "runner.key"
                ),
            ]
        )
    )
    _out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["tasks_done"] == 3 and not summary["partial"]
    hellos = {r["agent"]: r for r in journal(run) if r["event"] == "agent_hello"}
    assert set(hellos) == {"alice", "bob", "carol"}
    stop.touch()
    assert posing.communicate(timeout=20)[0].strip() == "0"  # it heard nothing
    time.sleep(0.1)
