"""The forkserver launcher: forked agents are real, separate agent processes, and none of them
outlives the runner — SIGKILLed, Ctrl-C'd, or its server killed under it."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import trio

from agentsim.run.errors import RunError
from agentsim.run.launchers import forkserver
from agentsim.run.launchers.base import AgentLaunch
from agentsim.testing import journal, pid_alive, start_run, wait_for

pytestmark = pytest.mark.skipif(not forkserver.available(), reason="forkserver needs Linux")


def scenario(tmp: Path, *, tasks: int, latency: float, launcher: str = "forkserver") -> Path:
    text = f'[run]\nname = "fs"\nlauncher = "{launcher}"\nheartbeat_s = 0.2\n'
    text += f'[tasks]\nsuite = "gsm8k"\nlimit = {tasks}\n'
    for name in ("alice", "bob", "carol"):
        text += f'[agents.{name}]\nengine = "scripted"\n'
        text += f'options = {{ table = "gsm8k", error_rate = 0.2, latency_s = {latency} }}\n'
    text += '[protocol]\nkind = "vote"\ndeadline_s = 20\n'
    f = tmp / "s.toml"
    f.write_text(text)
    return f


def stat(pid: int) -> tuple[str, int, int]:
    """(state, ppid, session id) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[3])


def children(pid: int) -> list[int]:
    """Child processes of ``pid``, whichever of its threads started them."""
    return [
        int(x)
        for t in Path(f"/proc/{pid}/task").iterdir()
        for x in (t / "children").read_text().split()
    ]


def agent_pids(run: Path) -> dict[str, int]:
    return {r["agent"]: r["pid"] for r in journal(run) if r["event"] == "agent_spawned"}


def test_forked_agents_are_separate_processes_with_their_own_pid_session_and_log(
    tmp_path: Path,
) -> None:
    p, run = start_run(scenario(tmp_path, tasks=40, latency=0.05), tmp_path / "runs")
    try:
        assert wait_for(lambda: any(r["event"] == "task_result" for r in journal(run)), 60)
        pids = agent_pids(run)
        assert sorted(pids) == ["alice", "bob", "carol"]
        (server,) = children(p.pid)  # the runner's only child is the forkserver
        assert server not in pids.values()
        for pid in pids.values():
            _state, ppid, sid = stat(pid)
            assert ppid == server and sid == pid  # forked by the server, each its own session
        assert len({p.pid, server, *pids.values()}) == 5
        ready = {r["agent"]: r["pid"] for r in journal(run) if r["event"] == "agent_ready"}
        assert ready == pids  # the process that said Ready is the one that was forked
        _out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    for name in pids:  # one log per agent, written by that agent
        lines = [json.loads(x) for x in (run / "logs" / f"{name}.log").read_text().splitlines()]
        assert {x["event"] for x in lines} >= {"agent_ready", "agent_exit"}
        assert all(x.get("agent", name) == name for x in lines)
    assert not any(pid_alive(pid) for pid in [server, *pids.values()])
    kinds = [r["kind"] for r in journal(run) if r["event"] == "envelope"]
    assert kinds.count("ask") == kinds.count("reply") == 40 * 3


@pytest.mark.parametrize("launcher", ["forkserver", "local"])
def test_sigkilled_runner_leaves_no_agent_and_no_server(tmp_path: Path, launcher: str) -> None:
    p, run = start_run(
        scenario(tmp_path, tasks=300, latency=0.05, launcher=launcher), tmp_path / "runs"
    )
    try:
        assert wait_for(lambda: sum(r["event"] == "task_result" for r in journal(run)) >= 2, 60)
        procs = {*agent_pids(run).values(), *children(p.pid)}
        assert len(procs) == (4 if launcher == "forkserver" else 3)
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert wait_for(lambda: not any(pid_alive(pid) for pid in procs), 5), "orphans"


def test_ctrl_c_leaves_no_forked_agent_and_no_server(tmp_path: Path) -> None:
    p, run = start_run(scenario(tmp_path, tasks=300, latency=0.1), tmp_path / "runs")
    try:
        assert wait_for(lambda: any(r["event"] == "task_result" for r in journal(run)), 60)
        procs = {*agent_pids(run).values(), *children(p.pid)}
        assert len(procs) == 4
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert elapsed < 5.0
    assert b"Traceback" not in err
    assert not any(pid_alive(pid) for pid in procs)  # stopped before the runner returned
    assert journal(run)[-1]["event"] == "run_end"


def test_a_killed_forkserver_takes_its_agents_and_the_run_ends_with_crashes_recorded(
    tmp_path: Path,
) -> None:
    p, run = start_run(scenario(tmp_path, tasks=300, latency=0.05), tmp_path / "runs")
    try:
        assert wait_for(lambda: any(r["event"] == "task_result" for r in journal(run)), 60)
        pids = list(agent_pids(run).values())
        (server,) = children(p.pid)
        os.kill(server, signal.SIGKILL)
        assert wait_for(lambda: not any(pid_alive(pid) for pid in pids), 5), "orphans"
        _out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert b"Traceback" not in err, err[-2000:]
    crashes = [r for r in journal(run) if r["event"] == "failure" and r["kind"] == "agent_crash"]
    assert {a for r in crashes for a in r["agents"]} == {"alice", "bob", "carol"}
    assert journal(run)[-1]["event"] == "run_end"


def test_handles_signal_forked_agents_and_report_their_exit_codes(tmp_path: Path) -> None:
    """kill, terminate, pause and resume reach the forked process; the server's exit codes
    come back as ``Popen.returncode`` does (-N for signal N)."""

    async def main() -> dict[str, int]:
        launcher = forkserver.ForkServerLauncher(tmp_path / "logs")
        codes: dict[str, int] = {}
        try:
            async with trio.open_nursery() as nursery:
                # nobody listens there: each agent waits for its Configure until signalled
                endpoint = f"ipc://{tmp_path}/nobody"
                a, b = [
                    await launcher.start(
                        AgentLaunch(name=n, endpoint=endpoint, run_id="r"), nursery=nursery
                    )
                    for n in ("a", "b")
                ]
                assert a.pid != b.pid and a.poll() is None
                assert stat(a.pid)[1] == launcher.server_pid
                assert wait_for((tmp_path / "logs" / "a.log").exists, 10)  # it set itself up
                a.pause()
                assert wait_for(lambda: stat(a.pid)[0] == "T", 5)  # stopped
                a.resume()
                assert wait_for(lambda: stat(a.pid)[0] != "T", 5)
                a.kill()
                b.terminate()
                with trio.fail_after(10):
                    codes = {"a": await a.wait(), "b": await b.wait()}
                assert a.poll() == codes["a"]
                nursery.cancel_scope.cancel()
        finally:
            launcher.close()
        return codes

    assert trio.run(main) == {"a": -signal.SIGKILL, "b": -signal.SIGTERM}


def test_a_forkserver_that_dies_at_start_is_one_error_with_its_last_log_lines(
    tmp_path: Path,
) -> None:
    class Broken(forkserver.ForkServerLauncher):
        def server_command(self, fd: int) -> list[str]:
            return [sys.executable, "-c", "import sys; print('boom: no preload'); sys.exit(3)"]

    async def main() -> str:
        launcher = Broken(tmp_path / "logs")
        try:
            async with trio.open_nursery() as nursery:
                launch = AgentLaunch(name="a", endpoint="ipc:///nowhere", run_id="r")
                try:
                    with trio.fail_after(30):
                        await launcher.start(launch, nursery=nursery)
                except RunError as e:
                    return str(e)
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            launcher.close()
        return "started"

    assert trio.run(main) == "the forkserver did not start; last log lines: boom: no preload"
