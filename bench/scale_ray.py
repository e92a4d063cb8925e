"""``bench/scale.py --launcher ray``: scripted agents over 3 Ray nodes vs the local launcher.

One invocation starts a real 3-node Ray cluster on this machine (``ray.cluster_utils.Cluster``,
head + 2 workers, via tests/hosts/ray_cluster.py) inside a network namespace that has only
``lo`` — Ray then binds 127.0.0.1 and every byte stays on loopback — and runs, for each size,
the same vote scenario twice: with ``launcher = "local"`` (one ``python -m agentsim agent``
process per agent on this host, the baseline) and with ``launcher = "ray"`` (agents spread
over the 3 nodes by a placement group, each started by its supervisor actor, connecting back
over CURVE TCP). Rows: start-up (run start → every agent ready), messages/s through the
broker while tasks run, ask→reply latency p50/p99, agents per node; ratios ray/local.

    python bench/scale.py --launcher ray [--sizes 16,64] [--tasks 10]

Needs root (``ip netns``) and Ray (``pip install "agentsim[ray]"``).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "tests" / "hosts" / "ray_cluster.py"
NODE_CPUS = 32  # logical CPUs per node: room for 64 agents at 0.25 CPU each plus the runner


def _records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (folder / "journal.jsonl").read_text().splitlines() if x]


def metrics(folder: Path) -> dict[str, Any]:
    recs = _records(folder)
    ready_t = next(r["t"] for r in recs if r["event"] == "all_ready")
    starts = [r["t"] for r in recs if r["event"] == "task_start"]
    ends = [r["t"] for r in recs if r["event"] == "task_result"]
    asks: dict[str, float] = {}
    lat: list[float] = []
    msgs = 0
    for r in recs:
        if r["event"] != "envelope":
            continue
        if starts[0] <= r["t"] <= ends[-1]:
            msgs += 1
        if r["kind"] == "ask":
            asks[r["msg_id"]] = r["t"]
        elif r["kind"] == "reply" and r["body"]["in_reply_to"] in asks:
            lat.append((r["t"] - asks[r["body"]["in_reply_to"]]) * 1000)
    lat.sort()
    ready = [r for r in recs if r["event"] == "agent_ready"]
    nodes = Counter(r.get("node_id", "host")[:6] for r in ready)
    failures = sum(1 for r in recs if r["event"] == "failure")
    return {
        "startup_s": ready_t,
        "msgs_per_s": msgs / max(1e-9, ends[-1] - starts[0]),
        "p50_ms": statistics.median(lat),
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "agent_rss_mb": statistics.mean(r["rss_bytes"] / 2**20 for r in ready),
        "per_node": "/".join(str(c) for _, c in sorted(nodes.items())),
        "failures": failures,
    }


def scenario(n: int, tasks: int, launcher: str, address: str) -> str:
    text = f'[run]\nname = "scale{n}"\nlauncher = "{launcher}"\nray_address = "{address}"\n'
    text += 'placement = "spread"\nheartbeat_s = 2.0\nready_timeout_s = 900\nstats_s = 1.0\n'
    text += f'[tasks]\nsuite = "gsm8k"\nlimit = {tasks}\n'
    for i in range(n):
        text += f'[agents.a{i}]\nengine = "scripted"\n'
        text += 'options = { table = "gsm8k", error_rate = 0.3 }\nresources = { num_cpus = 0.25 }\n'
    return text + '[protocol]\nkind = "vote"\ndeadline_s = 60\n'


def _run(cmd: list[str], env: dict[str, str], tmp: Path, text: str) -> Path:
    (tmp / "s.toml").write_text(text)
    out = tmp / "runs"
    done = subprocess.run(
        [*cmd, sys.executable, "-m", "agentsim", str(tmp / "s.toml"), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    (folder,) = out.iterdir()
    return folder


class Cluster:
    """The 3-node cluster process in namespace ``ns`` (see tests/hosts/ray_cluster.py)."""

    def __init__(self, ns: str, root: Path) -> None:
        self.env = dict(os.environ, RAY_TMPDIR=str(root), RAY_memory_monitor_refresh_ms="0")
        nodes = {n: {"num_cpus": NODE_CPUS} for n in ("head", "node_a", "node_b")}
        cfg = {"cache_root": str(root / "c"), "nodes": nodes, "quick_health_checks": False}
        (root / "cluster.json").write_text(json.dumps(cfg))
        with open(root / "cluster.err", "wb") as err:
            self.proc = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    sys.executable,
                    str(CLUSTER),
                    str(root / "cluster.json"),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=self.env,
            )
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True).start()
        try:
            self.address = json.loads(lines.get(timeout=600))["address"]
        except queue.Empty:
            tail = (root / "cluster.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the Ray cluster did not start:\n{tail}") from None

    def stop(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def main(sizes: list[int], tasks: int) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        sys.exit("bench/scale.py --launcher ray needs root and iproute2 (a loopback-only netns)")
    ns = f"agentsim-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    root = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))
    rows: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    ok = False
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        cluster = Cluster(ns, root)
        try:
            for n in sizes:
                local_dir = Path(tempfile.mkdtemp(prefix=f"local{n}-", dir=root))
                ray_dir = Path(tempfile.mkdtemp(prefix=f"ray{n}-", dir=root))
                local = metrics(
                    _run(
                        [],
                        dict(os.environ),
                        local_dir,
                        scenario(n, tasks, "local", cluster.address),
                    )
                )
                on_ray = metrics(
                    _run(
                        ["ip", "netns", "exec", ns],
                        cluster.env,
                        ray_dir,
                        scenario(n, tasks, "ray", cluster.address),
                    )
                )
                rows.append((n, local, on_ray))
                print(f"# {n} agents done", file=sys.stderr, flush=True)
        finally:
            cluster.stop()
        ok = True
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"# failed: runs and Ray's logs kept in {root}", file=sys.stderr)
    print(
        f"scale on Ray: scripted agents voting on {tasks} GSM8K tasks; ray = 3 Ray nodes on this "
        "machine (placement spread, CURVE TCP over loopback), local = one process per agent here"
    )
    print(
        "| agents | launcher | start-up s | msgs/s | ask p50 ms | ask p99 ms | agents per node "
        "| RSS/agent MB | failures |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, local, on_ray in rows:
        for name, r in (("local", local), ("ray", on_ray)):
            print(
                f"| {n} | {name} | {r['startup_s']:.1f} | {r['msgs_per_s']:.0f} | {r['p50_ms']:.1f} "
                f"| {r['p99_ms']:.1f} | {r['per_node']} | {r['agent_rss_mb']:.1f} | {r['failures']} |"
            )
        print(
            f"| {n} | ray/local | {on_ray['startup_s'] / local['startup_s']:.2f}x "
            f"| {on_ray['msgs_per_s'] / local['msgs_per_s']:.2f}x "
            f"| {on_ray['p50_ms'] / local['p50_ms']:.2f}x | {on_ray['p99_ms'] / local['p99_ms']:.2f}x "
            "| | | |"
        )
