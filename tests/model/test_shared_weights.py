"""Agents of the default model forked by the forkserver share one copy of the weights (the
page cache's pages of ``weights.bin``) and answer exactly as agents that each read their own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentsim.run.launchers import forkserver
from agentsim.testing import journal, only_run_dir, start_run, wait_for

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not forkserver.available(), reason="forkserver needs Linux"),
]

TASKS = 3


def scenario(tmp: Path, *, shared: bool) -> Path:
    launcher = "forkserver" if shared else "local"
    text = (
        f'[run]\nname = "w"\nlauncher = "{launcher}"\n[tasks]\nsuite = "gsm8k"\nlimit = {TASKS}\n'
    )
    for name in ("m1", "m2"):
        text += f'[agents.{name}]\nengine = "mlc"\nmax_tokens = 24\nthreads = 1\n'
        text += f"options = {{ share_weights = {str(shared).lower()}, context_length = 1024 }}\n"
    text += '[protocol]\nkind = "vote"\ndeadline_s = 600\n'
    f = tmp / f"{launcher}.toml"
    f.write_text(text)
    return f


def weights_mapping(pid: int) -> dict[str, int]:
    """The smaps fields (kB) of ``pid``'s mapping of an artifact's weights.bin."""
    fields: dict[str, int] = {}
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
            if inside:
                break
            inside = line.rstrip().endswith("/weights.bin")
        elif inside and len(head) == 3 and head[2] == "kB":
            fields[head[0].rstrip(":")] = int(head[1])
    return fields


def answers(run: Path) -> dict[tuple[str, str], list[int]]:
    out = {}
    for r in journal(run):
        if r["event"] == "envelope" and r["kind"] == "reply":
            out[(r["task_id"], r["src"])] = r["body"]["completion"]["token_ids"]
    return out


def test_forked_model_agents_share_the_weights_and_answer_as_agents_with_their_own(
    tmp_path: Path,
) -> None:
    p, run = start_run(scenario(tmp_path, shared=True), tmp_path / "shared", wait_s=60)
    maps: dict[str, dict[str, int]] = {}
    try:
        assert wait_for(lambda: any(r["event"] == "task_result" for r in journal(run)), 600)
        pids = {r["agent"]: r["pid"] for r in journal(run) if r["event"] == "agent_ready"}
        maps = {name: weights_mapping(pid) for name, pid in pids.items()}
        _out, err = p.communicate(timeout=900)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    for name, m in maps.items():  # both answered a task: all weights touched, none private
        assert m["Rss"] > 50_000, (name, m)  # the weights are ~95 MB
        assert m["Private_Clean"] + m["Private_Dirty"] < 0.02 * m["Rss"], (name, m)
        assert m["Shared_Clean"] > 0.95 * m["Rss"], (name, m)

    own_scenario = scenario(tmp_path, shared=False)
    q = subprocess.run(
        [sys.executable, "-m", "agentsim", str(own_scenario), "--out", str(tmp_path / "own")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert q.returncode == 0, q.stderr
    own = only_run_dir(tmp_path / "own")
    ready: list[dict[str, Any]] = [r for r in journal(own) if r["event"] == "agent_ready"]
    assert len(ready) == 2
    shared_answers, own_answers = answers(run), answers(own)
    assert len(shared_answers) == 2 * TASKS and all(shared_answers.values())
    assert shared_answers == own_answers  # same tokens, agent by agent, task by task
    results = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    assert len(results) == TASKS
