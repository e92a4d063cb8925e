"""Every kind of bad scenario input gives one pinned line, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentsim.scenario import ScenarioError
from agentsim.scenario.validate import load_scenario

CASES = [
    (
        "negative",
        '[run]\nname = "x"\n\n[agents.critic]\nengine = "scripted"\nmax_tokens = -5\n',
        "agents.critic.max_tokens must be >= 1, got -5 ({f}:6)",
    ),
    (
        "unknown_key",
        '[agents.a]\nengine = "scripted"\nfoo = 1\n',
        "agents.a.foo is not a known key ({f}:3)",
    ),
    (
        "wrong_type",
        '[agents.a]\nengine = "scripted"\nmax_tokens = "lots"\n',
        "agents.a.max_tokens must be of type int, got 'lots' ({f}:3)",
    ),
    (
        "missing_agent",
        '[agents.a]\nengine = "scripted"\n[protocol]\nkind = "vote"\nagents = ["a", "zed"]\n',
        "protocol.agents.1 must name an agent declared under [agents], got 'zed' ({f}:5)",
    ),
    (
        "bad_path",
        '[tasks]\nsuite = "nope.jsonl"\n[agents.a]\nengine = "scripted"\n',
        "tasks.suite must be a built-in suite (bfcl, bfcl_irrelevance, bfcl_multiple, bfcl_parallel, "
        "bfcl_simple_python, gsm8k, study, study_arithmetic, study_factbook_qa, study_financial_qa, "
        "study_ner, study_program, study_sentiment, study_summarization) or an existing .jsonl file, "
        "got 'nope.jsonl' ({f}:2)",
    ),
    (
        "negative_budget",
        '[protocol]\nbudget_tokens = -1\n[agents.a]\nengine = "scripted"\n',
        "protocol.budget_tokens must be >= 0, got -1 ({f}:2)",
    ),
    (
        "unknown_engine",
        '[agents.a]\nengine = "gpt5"\n',
        "agents.a.engine must be one of mlc, mlc-llm, openai, llamacpp, scripted, replay, got 'gpt5' ({f}:2)",
    ),
    (
        "unknown_protocol",
        '[agents.a]\nengine = "scripted"\n[protocol]\nkind = "chaos"\n',
        "protocol.kind must be one of debate, solo, vote, got 'chaos' ({f}:4)",
    ),
    (
        "zero_heartbeat",
        '[run]\nheartbeat_s = 0\n[agents.a]\nengine = "scripted"\n',
        "run.heartbeat_s must be > 0.0, got 0 ({f}:2)",
    ),
    (
        "fault_prob",
        '[agents.a]\nengine = "scripted"\n[faults]\ndrop = { p = 2 }\n',
        "faults.drop.p must be <= 1.0, got 2 ({f}:4)",
    ),
    (
        "fault_agent",
        '[agents.a]\nengine = "scripted"\n[faults]\nkill = [{ agent = "zz" }]\n',
        "faults.kill[0].agent must name a declared agent, got 'zz' ({f}:4)",
    ),
    ("no_agents", '[run]\nname = "x"\n', "agents must declare at least one agent ({f})"),
    (
        "syntax",
        "[agents.a\n",
        "TOML syntax error: Expected ']' at the end of a table declaration (at line 1, column 10) ({f})",
    ),
]
# The protocol list grows as protocols land; pin the prefix for that case.
PREFIX_ONLY = {"unknown_protocol"}


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_scenario_gives_its_one_line_error(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    f = tmp_path / f"{name}.toml"
    f.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    msg = str(info.value)
    want = expected.format(f=f)
    if name in PREFIX_ONLY:
        assert msg.startswith("protocol.kind must be one of ") and msg.endswith(
            f"got 'chaos' ({f}:4)"
        )
    else:
        assert msg == want
    assert "\n" not in msg


def test_cli_prints_one_line_and_exits_2_without_traceback(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(CASES[0][1])
    for cmd in (["validate", str(f)], [str(f)], ["run", str(f)]):
        p = subprocess.run(
            [sys.executable, "-m", "agentsim", *cmd], capture_output=True, text=True, cwd=tmp_path
        )
        assert p.returncode == 2
        assert (
            p.stderr == f"agentsim: error: agents.critic.max_tokens must be >= 1, got -5 ({f}:6)\n"
        )
        assert "Traceback" not in p.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_tasks_file_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"question": "q", "answer": 1}\n{"question": "q"}\n')
    f = tmp_path / "s.toml"
    f.write_text('[tasks]\nsuite = "t.jsonl"\n[agents.a]\nengine = "scripted"\n')
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", "validate", str(f)], capture_output=True, text=True
    )
    assert p.returncode == 2
    assert p.stderr.strip() == (
        "agentsim: error: tasks.suite: tasks line is not a valid task: "
        f"Object missing required field `answer` ({tmp_path / 't.jsonl'}:2)"
    )


def test_good_scenarios_in_the_repo_validate() -> None:
    repo = Path(__file__).resolve().parents[2]
    for f in sorted((repo / "scenarios").glob("*.toml")):
        load_scenario(f)
