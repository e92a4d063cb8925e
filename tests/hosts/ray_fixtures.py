"""What the Ray tests share: a network namespace with only ``lo``, a real multi-node Ray
cluster inside it (``ray_cluster.py``), commands run inside it, and the leftover check.

Every byte stays on loopback: Ray binds 127.0.0.1 only because the namespace has nothing
else (outside one, Ray 2.x binds the machine's interface address whatever it is told).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from agentsim.testing import wait_for

HERE = Path(__file__).resolve().parent
AGENTSIM = [sys.executable, "-m", "agentsim"]
NODES = ("head", "node_a", "node_b")


def netns_unavailable() -> str:
    """Why network namespaces cannot be made here (``""``: they can)."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = subprocess.run(
        ["ip", "netns", "add", f"agentsim-probe-{os.getpid()}"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"ip netns not permitted here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", f"agentsim-probe-{os.getpid()}"], capture_output=True)
    return ""


@contextlib.contextmanager
def loopback_namespace(tag: str = "ray") -> Iterator[str]:
    """A fresh network namespace whose only interface is ``lo`` (up); skips where none can be
    made."""
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    name = f"agentsim-{tag}-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(
            ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
            check=True,
            capture_output=True,
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class RayCluster:
    """The cluster process: its address, node ids by name, and its command channel."""

    def __init__(self, ns: str, root: Path) -> None:
        self.ns = ns
        self.root = root
        # Ray's memory monitor kills workers when the *machine* is nearly full; on a shared
        # machine (CI, other users) that is not this test's memory, so it is off here.
        self.env = dict(os.environ, RAY_TMPDIR=str(root), RAY_memory_monitor_refresh_ms="0")
        cfg = {"cache_root": str(root / "cache"), "nodes": {n: {} for n in NODES}}
        (root / "cluster.json").write_text(json.dumps(cfg))
        with open(root / "cluster.err", "wb") as err:
            self.proc = subprocess.Popen(
                [
                    *("ip", "netns", "exec", ns, sys.executable),
                    *(str(HERE / "ray_cluster.py"), str(root / "cluster.json")),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=self.env,
            )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._answer(180)
        self.address: str = first["address"]
        self.nodes: dict[str, str] = first["nodes"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def _answer(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            tail = (self.root / "cluster.err").read_text(errors="replace")[-2000:]
            raise AssertionError(f"the Ray cluster did not answer in {timeout}s:\n{tail}") from None
        return dict(json.loads(line))

    def command(self, cmd: str, timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        answer = self._answer(timeout)
        if "added" in answer:  # a node put back is a new node: later tests look it up here
            self.nodes[answer["added"]] = answer["node_id"]
        return answer

    def cache(self, node: str) -> Path:
        return self.root / "cache" / node

    def agentsim(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """``python -m agentsim ARGS`` inside the namespace (the runner joins this cluster)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, *AGENTSIM, *args],
            capture_output=True,
            text=True,
            env=self.env,
            **kw,
        )

    def start_agentsim(self, *args: str) -> subprocess.Popen[str]:
        """The same, started in the background (``ip netns exec`` execs it: its pid is the
        runner's)."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *AGENTSIM, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def supervisors(self) -> list[psutil.Process]:
        """Live supervisor actors of this cluster (their process title names the class)."""
        found = []
        for p in psutil.process_iter(["cmdline", "environ"]):
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(p.info["cmdline"] or [])
                env = p.info["environ"] or {}
                if "AgentSupervisor" in cmd and env.get("RAY_TMPDIR") == str(self.root):
                    found.append(p)
        return found

    def node_processes(self) -> list[psutil.Process]:
        """Every process this cluster started (what must be gone after ``quit``)."""
        found = []
        for p in psutil.process_iter(["environ"]):
            with contextlib.suppress(psutil.Error):
                if (p.info["environ"] or {}).get("RAY_TMPDIR") == str(
                    self.root
                ) and p.pid != os.getpid():
                    found.append(p)
        return found

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.command("quit", timeout=60)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def processes_with(variable: str, value: str) -> list[psutil.Process]:
    """Processes whose environment has ``variable=value`` (all that a Ray instance started)."""
    found = []
    for p in psutil.process_iter(["environ"]):
        with contextlib.suppress(psutil.Error):
            if (p.info["environ"] or {}).get(variable) == value and p.pid != os.getpid():
                found.append(p)
    return found


def agent_processes(run_id: str) -> list[psutil.Process]:
    """Agent processes of one run, wherever they were started."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmd = p.info["cmdline"] or []
            if "agent" in cmd and run_id in cmd:
                found.append(p)
    return found


@contextlib.contextmanager
def ray_cluster() -> Iterator[RayCluster]:
    """A head and two worker nodes (custom resources ``head``/``node_a``/``node_b``, label
    ``agentsim-node``, node-local caches) in a loopback-only namespace. On exit: shut down,
    and no process of it left."""
    pytest.importorskip("ray")
    with loopback_namespace() as ns:
        root = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths
        cluster = RayCluster(ns, root)
        try:
            yield cluster
        finally:
            cluster.stop()
            assert wait_for(lambda: not cluster.node_processes(), 30), (
                f"processes of the Ray cluster left: {cluster.node_processes()}"
            )
            shutil.rmtree(root, ignore_errors=True)
