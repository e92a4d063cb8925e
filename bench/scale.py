"""Scale benchmark: 16 / 64 / 256 scripted agent processes voting, measured in one run.

For each size: start-up time, messages per second through the broker while tasks run, ask→reply
latency p50/p99, memory per agent (RSS at Ready) and the runner's RSS. Ratios are against the
16-agent run of the same invocation.

    python bench/scale.py [--sizes 16,64,256] [--tasks 10]
    python bench/scale.py --launcher ray [--sizes 16,64]   (3 Ray nodes vs local: scale_ray.py)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def run(n: int, tasks: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"agentsim-scale-{n}-"))
    text = f'[run]\nname = "scale{n}"\nheartbeat_s = 2.0\nready_timeout_s = 600\nstats_s = 1.0\n'
    text += f'[tasks]\nsuite = "gsm8k"\nlimit = {tasks}\n'
    for i in range(n):
        text += f'[agents.a{i}]\nengine = "scripted"\noptions = {{ table = "gsm8k", error_rate = 0.3 }}\n'
    text += '[protocol]\nkind = "vote"\ndeadline_s = 30\n'
    (tmp / "s.toml").write_text(text)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "agentsim",
            str(tmp / "s.toml"),
            "--out",
            str(tmp / "runs"),
            "--quiet",
        ],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    folder = next((tmp / "runs").iterdir())
    recs = [json.loads(x) for x in (folder / "journal.jsonl").read_text().splitlines() if x.strip()]
    ready_t = next(r["t"] for r in recs if r["event"] == "all_ready")
    starts = [r["t"] for r in recs if r["event"] == "task_start"]
    ends = [r["t"] for r in recs if r["event"] == "task_result"]
    asks: dict[str, float] = {}
    lat: list[float] = []
    msgs = 0
    for r in recs:
        if r["event"] != "envelope":
            continue
        if starts and starts[0] <= r["t"] <= ends[-1]:
            msgs += 1
        if r["kind"] == "ask":
            asks[r["msg_id"]] = r["t"]
        elif r["kind"] == "reply" and r["body"]["in_reply_to"] in asks:
            lat.append((r["t"] - asks[r["body"]["in_reply_to"]]) * 1000)
    rss_agents = [r["rss_bytes"] / 2**20 for r in recs if r["event"] == "agent_ready"]
    runner_rss = (
        max(r["rss_bytes"] for r in recs if r["event"] in ("runner_stats", "broker_stats")) / 2**20
    )
    lat.sort()
    return {
        "agents": n,
        "startup_s": ready_t,
        "msgs_per_s": msgs / max(1e-9, ends[-1] - starts[0]),
        "p50_ms": statistics.median(lat),
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "agent_rss_mb": statistics.mean(rss_agents),
        "runner_rss_mb": runner_rss,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="")
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--launcher", choices=["local", "ray"], default="local")
    args = ap.parse_args()
    if args.launcher == "ray":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from scale_ray import main as ray_main

        ray_main([int(n) for n in (args.sizes or "16,64").split(",")], args.tasks)
        return
    args.sizes = args.sizes or "16,64,256"
    rows = [run(int(n), args.tasks) for n in args.sizes.split(",")]
    base = rows[0]
    print(
        f"scale: scripted agents voting on {args.tasks} GSM8K tasks (every agent answers every task)"
    )
    print(
        "| agents | start-up s | msgs/s | × base | ask p50 ms | ask p99 ms | × base p99 | RSS/agent MB | runner RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['agents']} | {r['startup_s']:.1f} | {r['msgs_per_s']:.0f} | {r['msgs_per_s'] / base['msgs_per_s']:.2f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['p99_ms'] / base['p99_ms']:.2f} "
            f"| {r['agent_rss_mb']:.1f} | {r['runner_rss_mb']:.1f} |"
        )


if __name__ == "__main__":
    main()
