"""Every fault kind × every protocol, with real agent processes: the run completes, every task
has a result line, the expected failure is recorded with evidence naming the injected fault,
and no agent process survives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentsim.testing import journal, only_run_dir, pid_alive

FAULTS: dict[str, tuple[str, set[str]]] = {
    "drop": ('drop = { p = 1.0, links = ["runner->b"], kinds = ["ask"] }', {"message_timeout"}),
    "delay": (
        'delay = { p = 1.0, dist = "fixed", value_s = 1.5, links = ["runner->b"], kinds = ["ask"] }',
        {"message_timeout"},
    ),
    "duplicate": (
        'duplicate = { p = 1.0, links = ["runner->b"], kinds = ["ask"] }',
        {"duplicate_delivery"},
    ),
    "reorder": ('reorder = { p = 1.0, window_s = 0.6, links = ["runner->b"] }', {"out_of_order"}),
    "partition": ('partition = [{ groups = [["b"], ["a", "c", "runner"]] }]', {"message_timeout"}),
    "kill": ('kill = [{ agent = "b", at_s = 0.0 }]', {"agent_crash"}),
    "pause": ('pause = [{ agent = "b", at_s = 0.0, duration_s = 2.0 }]', {"message_timeout"}),
    "slow": ('slow = [{ agent = "b", factor = 30.0 }]', {"message_timeout"}),
}

REACT_SCRIPT = '[\'{"tool": "calculator", "arguments": {"expression": "2+2"}}\', \'{"final_answer": "{gold}"}\']'

# protocol -> (protocol table, per-agent extra options, agents with tools); "b" takes the faults
PROTOCOLS: dict[str, tuple[str, dict[str, str], set[str]]] = {
    "solo": ('kind = "solo"\nagents = ["b"]', {}, set()),
    "vote": ('kind = "vote"\nagents = ["a", "b", "c"]', {}, set()),
    "debate": ('kind = "debate"\nagents = ["a", "b", "c"]\nrounds = 2', {}, set()),
    "react": (
        'kind = "react"\nagents = ["b"]\nmax_steps = 3',
        {"b": f"script = {REACT_SCRIPT}, "},
        {"b"},
    ),
    "router": (
        'kind = "router"\nagents = ["a", "b", "c"]\nmax_steps = 3\noptions = { supervisor = "a" }',
        {"a": "script = ['ROUTE: b', 'Final Answer: {gold}'], ", "b": f"script = {REACT_SCRIPT}, "},
        {"b", "c"},
    ),
    "pipeline": (
        'kind = "pipeline"\nagents = ["a", "b", "c"]\nrounds = 2',
        {
            "a": 'reply = "1. Read. 2. Add.", ',
            "b": 'reply = "Final Answer: {gold}", ',
            "c": 'reply = "APPROVE", ',
        },
        set(),
    ),
    "manager": (
        'kind = "manager"\nagents = ["a", "b", "c"]\noptions = { manager = "a" }',
        {"a": "script = ['1. first half\\n2. second half', 'Final Answer: {gold}'], "},
        set(),
    ),
}


def scenario_text(protocol: str, fault: str) -> str:
    proto, extra, tooled = PROTOCOLS[protocol]
    agents = ""
    for name in ("a", "b", "c"):
        opts = f'{extra.get(name, "")}table = "gsm8k", latency_s = 0.03'
        tools = 'tools = ["calculator"]\n' if name in tooled else ""
        agents += f'[agents.{name}]\nengine = "scripted"\n{tools}options = {{ {opts} }}\n'
    return (
        f'[run]\nname = "{protocol}-{fault}"\nseed = 5\nheartbeat_s = 0.1\nheartbeat_misses = 8\n'
        f'[tasks]\nsuite = "gsm8k"\nlimit = 2\n{agents}'
        f"[protocol]\n{proto}\ndeadline_s = 0.7\n[faults]\n{FAULTS[fault][0]}\n"
    )


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_fault_is_recorded_with_evidence_and_run_completes(
    tmp_path: Path, protocol: str, fault: str
) -> None:
    f = tmp_path / "s.toml"
    f.write_text(scenario_text(protocol, fault))
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", str(f), "--out", str(tmp_path / "runs"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path / "runs")
    results = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x.strip()]
    assert [r["task_id"] for r in results] == ["gsm8k-0", "gsm8k-1"]
    recs = journal(run)
    injected = {r["fault_id"] for r in recs if r["event"] == "fault"}
    assert injected, "the fault was never injected"
    expected = FAULTS[fault][1]
    failures: list[dict[str, Any]] = [r for r in recs if r["event"] == "failure"]
    hits = [x for x in failures if x["kind"] in expected]
    assert hits, f"expected {expected}, got {sorted({x['kind'] for x in failures})}"
    assert any(set(x.get("evidence", [])) & injected for x in hits), hits
    pids = [r["pid"] for r in recs if r["event"] == "agent_spawned"]
    assert pids and not any(pid_alive(pid) for pid in pids)


def test_zero_probability_faults_change_nothing(tmp_path: Path) -> None:
    outs = []
    for i, faults in enumerate(
        ("", "drop = { p = 0.0 }\nduplicate = { p = 0.0 }\nreorder = { p = 0.0 }")
    ):
        text = scenario_text("debate", "drop").split("[faults]")[0] + (
            "[faults]\n" + faults if faults else ""
        )
        f = tmp_path / f"s{i}.toml"
        f.write_text(text)
        out = tmp_path / f"runs{i}"
        subprocess.run(
            [sys.executable, "-m", "agentsim", str(f), "--out", str(out), "--quiet"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        run = only_run_dir(out)
        outs.append(
            [
                (r["task_id"], r["answer"])
                for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())
            ]
        )
    assert outs[0] == outs[1]
