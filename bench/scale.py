"""Scale benchmark: many agents on one host, measured in one run, printed as ratios.

``scripted``: N scripted agent processes vote on GSM8K tasks (every agent answers every task).
Per size and launcher: start-up (run start → every agent ready), messages/s through the broker,
ask→reply latency p50/p99, memory per agent (PSS, USS, RSS, read from /proc while the run is in
its tasks) and the runner's RSS. Ratios: p99 against the smallest size of the same launcher;
start-up against the ``local`` launcher (``python -m agentsim agent`` per agent) at the same size.

``model``: N agents of the default model (mlc engine, 1 thread each) vote on two tasks; their
memory is read after the first task (weights touched). Rows: weights shared (the default:
forkserver, memory-mapped weights) and the baseline (local launcher, ``share_weights = false``:
each agent reads its own copy, as before). The N-th agent's USS is compared with the RSS of a
lone agent of the baseline.

    python bench/scale.py scripted [--sizes 16,256,1024] [--local-sizes 16,256] [--tasks 10]
                                   [--panel 16]
    python bench/scale.py model [--sizes 1,4,8]
    python bench/scale.py all
    python bench/scale.py --launcher ray [--sizes 16,64]   (3 Ray nodes vs local: scale_ray.py)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _journal(folder: Path) -> list[dict[str, Any]]:
    path = folder / "journal.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line being written
    return out


def _smaps(pid: int) -> dict[str, float] | None:
    """PSS, USS (private clean + dirty) and RSS of one process, in MB."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    kb: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            kb[parts[0].rstrip(":")] = int(parts[1])
    return {
        "pss": kb.get("Pss", 0) / 1024,
        "uss": (kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)) / 1024,
        "rss": kb.get("Rss", 0) / 1024,
    }


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:  # whichever thread started them
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(x) for x in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


class _Tail:
    """New journal records since the last read (the journal grows to MBs: never re-read it)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.buf = path, 0, b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        *lines, self.buf = (self.buf + data).split(b"\n")
        return [json.loads(x) for x in lines if x.strip()]


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float | None:
    """user + system CPU seconds of one process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def run_scenario(text: str, tag: str, *, cpu_until: int = 0) -> dict[str, Any]:
    """Run one scenario. Once the first task is done: every agent's memory, and its CPU time;
    once ``cpu_until`` tasks are done, CPU time again (the CPU the asks in between cost)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"agentsim-scale-{tag}-"))
    (tmp / "s.toml").write_text(text)
    cmd = [sys.executable, "-m", "agentsim", str(tmp / "s.toml"), "--out", str(tmp / "runs")]
    proc = subprocess.Popen(
        [*cmd, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp
    )
    mem: dict[str, dict[str, float]] = {}
    server: dict[str, float] | None = None
    cpu: list[tuple[int, float, float]] = []  # (tasks done, agents' CPU s, runner's CPU s)
    tail: _Tail | None = None
    pids: dict[str, int] = {}
    done = 0

    def agents_cpu() -> float:
        """All agents' CPU seconds, NaN if one has exited (a sum missing some is no figure)."""
        got = [_cpu_s(p) for p in pids.values()]
        return float("nan") if any(g is None for g in got) else sum(g or 0.0 for g in got)

    while proc.poll() is None:
        time.sleep(0.02)
        if tail is None:
            runs = list((tmp / "runs").glob("*")) if (tmp / "runs").exists() else []
            tail = _Tail(runs[0] / "journal.jsonl") if runs else None
            continue
        for r in tail.read():
            if r["event"] == "agent_ready":
                pids[r["agent"]] = r["pid"]
            elif r["event"] == "task_result":
                done += 1
        if done >= 1 and not mem:
            cpu.append((done, agents_cpu(), _cpu_s(proc.pid) or 0))
            for name, pid in pids.items():
                m = _smaps(pid)
                if m is not None:
                    mem[name] = m
            # the forkserver (if any): the runner's child that is not an agent
            others = [c for c in _children(proc.pid) if c not in set(pids.values())]
            server = _smaps(others[0]) if others else None
        elif cpu_until and len(cpu) == 1 and done >= cpu_until:
            cpu.append((done, agents_cpu(), _cpu_s(proc.pid) or 0))
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{tag}: run failed ({proc.returncode}): {err.decode()[-2000:]}")
    assert tail is not None
    folder = tail.path.parent
    return {"recs": _journal(folder), "mem": mem, "server": server, "folder": folder, "cpu": cpu}


def _latencies(recs: list[dict[str, Any]]) -> list[float]:
    asks: dict[str, float] = {}
    lat: list[float] = []
    for r in recs:
        if r["event"] != "envelope":
            continue
        if r["kind"] == "ask":
            asks[r["msg_id"]] = r["t"]
        elif r["kind"] == "reply" and r["body"]["in_reply_to"] in asks:
            lat.append((r["t"] - asks[r["body"]["in_reply_to"]]) * 1000)
    return sorted(lat)


def _pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


# ----- scripted agents ---------------------------------------------------------------------
GSM8K_TASKS = 1319
#: ``run.heartbeat_s`` of the scripted runs (``--heartbeat``)
HEARTBEAT_S = 2.0


def scripted_row(
    n: int, tasks: int, launcher: str, panel: int = 0, asks: int = 0
) -> dict[str, Any]:
    """``panel`` > 0: each task asks ``panel`` agents drawn from all N (vote's ``panel``
    option: the same load at every size, so what N connected agents cost an ask shows);
    0: every agent answers every task. At least ``asks`` asks: more tasks where N is small
    (a run of a few hundred asks is over before its processes can be read)."""
    voters = min(panel, n) if panel else n
    tasks = min(GSM8K_TASKS, max(tasks, -(-asks // voters)))
    text = f'[run]\nname = "scale{n}"\nlauncher = "{launcher}"\nheartbeat_s = {HEARTBEAT_S}\n'
    text += "ready_timeout_s = 900\nstats_s = 1.0\n"
    text += f'[tasks]\nsuite = "gsm8k"\nlimit = {tasks}\n'
    for i in range(n):
        text += f'[agents.a{i}]\nengine = "scripted"\noptions = {{ table = "gsm8k", error_rate = 0.3 }}\n'
    text += '[protocol]\nkind = "vote"\ndeadline_s = 60\n'
    if panel:
        text += f"options = {{ panel = {voters} }}\n"
    out = run_scenario(text, f"{launcher}{n}", cpu_until=max(2, tasks // 2))
    recs = out["recs"]
    ready_t = next(r["t"] for r in recs if r["event"] == "all_ready")
    agent_us = runner_us = float("nan")
    if len(out["cpu"]) == 2:
        (d0, a0, r0), (d1, a1, r1) = out["cpu"]
        asks = max(1, (d1 - d0) * voters)
        agent_us, runner_us = 1e6 * (a1 - a0) / asks, 1e6 * (r1 - r0) / asks
    starts = [r["t"] for r in recs if r["event"] == "task_start"]
    ends = [r["t"] for r in recs if r["event"] == "task_result"]
    msgs = sum(1 for r in recs if r["event"] == "envelope" and starts[0] <= r["t"] <= ends[-1])
    lat = _latencies(recs)
    mem = list(out["mem"].values())
    runner_rss = max(r["rss_bytes"] for r in recs if r["event"] in ("runner_stats", "broker_stats"))
    return {
        "launcher": launcher,
        "agents": n,
        "voters": voters,
        "tasks": tasks,
        "panel": panel,
        "startup_s": ready_t,
        "msgs_per_s": msgs / max(1e-9, ends[-1] - starts[0]),
        "p50_ms": _pct(lat, 0.5),
        "p99_ms": _pct(lat, 0.99),
        "pss": statistics.mean(m["pss"] for m in mem) if mem else float("nan"),
        "uss": statistics.mean(m["uss"] for m in mem) if mem else float("nan"),
        "rss": statistics.mean(m["rss"] for m in mem) if mem else float("nan"),
        "sampled": len(mem),
        "fleet_pss_mb": sum(m["pss"] for m in mem) + (out["server"] or {}).get("pss", 0.0),
        "runner_rss_mb": runner_rss / 2**20,
        "agent_cpu_us": agent_us,
        "runner_cpu_us": runner_us,
    }


def bench_scripted(
    sizes: list[int], local_sizes: list[int], tasks: int, panel: int, asks: int
) -> None:
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()[0]
    for n in sizes:
        rows.append(scripted_row(n, tasks, "forkserver", asks=asks))
        if n in local_sizes:
            rows.append(scripted_row(n, tasks, "local", asks=asks))
        if panel:
            rows.append(scripted_row(n, tasks, "forkserver", panel, asks=asks))
    cores = os.cpu_count() or 1
    print(f"\nscale: scripted agents voting on GSM8K tasks (at least {tasks}, {asks} asks)")
    print(
        f"host: {cores} cores; load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    )
    print(
        "voters = all: every agent answers every task (a broadcast of N asks at once); "
        f"voters = {panel}: each task asks {panel} agents drawn from the N (vote's panel option), "
        "the same load at every size: what N connected agents themselves cost an ask"
    )
    print(
        "| launcher | agents | voters | tasks | start-up s | × local | msgs/s | ask p50 ms | ask p99 ms "
        "| × smallest p99 | CPU µs/ask agents | CPU µs/ask runner | CPU bound of last reply ms "
        "| PSS/agent MB | USS/agent MB | RSS/agent MB | fleet PSS GB (agents read) | runner RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        local = next(
            (x for x in rows if x["launcher"] == "local" and x["agents"] == r["agents"]), None
        )
        base = next(x for x in rows if (x["launcher"], x["panel"]) == (r["launcher"], r["panel"]))
        vs_local = f"{r['startup_s'] / local['startup_s']:.2f}" if local and not r["panel"] else "—"
        # a broadcast's last reply cannot come before all its asks' CPU is spent on the cores
        bound = r["voters"] * (r["agent_cpu_us"] + r["runner_cpu_us"]) / cores / 1000
        print(
            f"| {r['launcher']} | {r['agents']} | {r['voters'] if r['panel'] else 'all'} | {r['tasks']} "
            f"| {r['startup_s']:.1f} | {vs_local} "
            f"| {r['msgs_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['p99_ms'] / base['p99_ms']:.2f} | {r['agent_cpu_us']:.0f} "
            f"| {r['runner_cpu_us']:.0f} | {bound:.1f} "
            f"| {r['pss']:.1f} | {r['uss']:.1f} "
            f"| {r['rss']:.1f} | {r['fleet_pss_mb'] / 1024:.2f} ({r['sampled']}) "
            f"| {r['runner_rss_mb']:.0f} |"
        )


# ----- model agents ------------------------------------------------------------------------
def model_row(n: int, shared: bool, model: str) -> dict[str, Any]:
    launcher = "forkserver" if shared else "local"
    text = f'[run]\nname = "model{n}"\nlauncher = "{launcher}"\nready_timeout_s = 900\n'
    text += '[tasks]\nsuite = "gsm8k"\nlimit = 2\n'
    for i in range(n):
        text += f'[agents.m{i}]\nengine = "mlc"\nmodel = "{model}"\nmax_tokens = 16\nthreads = 1\n'
        text += f"options = {{ share_weights = {str(shared).lower()}, context_length = 2048 }}\n"
    text += '[protocol]\nkind = "vote"\ndeadline_s = 600\n'
    out = run_scenario(text, f"model{n}{launcher}")
    recs = out["recs"]
    order = [r["agent"] for r in recs if r["event"] == "agent_ready"]
    mem = [out["mem"][a] for a in order if a in out["mem"]]
    return {
        "shared": shared,
        "agents": n,
        "pss": statistics.mean(m["pss"] for m in mem),
        "uss": statistics.mean(m["uss"] for m in mem),
        "rss": statistics.mean(m["rss"] for m in mem),
        "last_uss": mem[-1]["uss"],
        "first_rss": mem[0]["rss"],
        "fleet_pss_mb": sum(m["pss"] for m in mem) + (out["server"] or {}).get("pss", 0.0),
        "startup_s": next(r["t"] for r in recs if r["event"] == "all_ready"),
    }


def bench_model(sizes: list[int], model: str) -> None:
    from agentsim.engines.mlc import ensure_artifact, model_path

    ensure_artifact(model_path(model))  # no run below compiles
    rows = [model_row(n, shared, model) for n in sizes for shared in (True, False)]
    lone = next(r for r in rows if not r["shared"] and r["agents"] == min(sizes))
    print(f"\nscale: {model} agents (mlc, 1 thread each), memory after their first answer")
    print(
        f"baseline: a lone agent with its own copy of the weights, RSS {lone['first_rss']:.0f} MB"
    )
    print(
        "| weights | agents | start-up s | PSS/agent MB | USS/agent MB | RSS/agent MB "
        "| last agent USS MB | × lone RSS | fleet PSS MB | × baseline fleet |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = next(x for x in rows if not x["shared"] and x["agents"] == r["agents"])
        print(
            f"| {'shared' if r['shared'] else 'own copy'} | {r['agents']} | {r['startup_s']:.1f} "
            f"| {r['pss']:.0f} | {r['uss']:.0f} | {r['rss']:.0f} | {r['last_uss']:.0f} "
            f"| {r['last_uss'] / lone['first_rss']:.2f} | {r['fleet_pss_mb']:.0f} "
            f"| {r['fleet_pss_mb'] / base['fleet_pss_mb']:.2f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", choices=["scripted", "model", "all"], default="all")
    ap.add_argument("--sizes", help="agent counts (default 16,256,1024 scripted; 1,4,8 model)")
    ap.add_argument(
        "--local-sizes", default="16,256", help="sizes also run with the local launcher"
    )
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--asks", type=int, default=4096, help="at least this many asks per row")
    ap.add_argument("--heartbeat", type=float, default=2.0, help="run.heartbeat_s (scripted)")
    ap.add_argument(
        "--panel", type=int, default=16, help="also rows where only this many agents vote (0: none)"
    )
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--nice", type=int, default=10, help="niceness for the run (shared machines)")
    ap.add_argument(
        "--launcher",
        choices=["local", "ray"],
        default="local",
        help="ray: scripted agents over 3 Ray nodes vs the local launcher (bench/scale_ray.py)",
    )
    a = ap.parse_args()
    if a.nice:
        os.nice(a.nice)
    if a.launcher == "ray":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from scale_ray import main as ray_main

        ray_main([int(n) for n in (a.sizes or "16,64").split(",")], a.tasks)
        return
    global HEARTBEAT_S
    HEARTBEAT_S = a.heartbeat
    local = [int(x) for x in a.local_sizes.split(",") if x]
    if a.what in ("scripted", "all"):
        sizes = [int(x) for x in (a.sizes or "16,256,1024").split(",")]
        bench_scripted(sizes, local, a.tasks, a.panel, a.asks)
    if a.what in ("model", "all"):
        sizes = [int(x) for x in (a.sizes if a.what == "model" and a.sizes else "1,4,8").split(",")]
        bench_model(sizes, a.model)


if __name__ == "__main__":
    main()
