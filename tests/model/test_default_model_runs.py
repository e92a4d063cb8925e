"""End to end on the real default model (SmolLM2-135M compiled with TVM), real processes.

These use the shared model cache: the first test in a fresh environment pulls the model from
PyPI and compiles it, later ones load the compiled artifact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentsim.testing import journal, only_run_dir

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentsim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def results(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x.strip()]


def test_solo_gsm8k_scenario_runs_on_the_default_model(tmp_path: Path) -> None:
    p = run_cli(
        str(REPO / "scenarios" / "solo-gsm8k.toml"),
        "--limit",
        "3",
        "--out",
        str(tmp_path / "runs"),
        "--quiet",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path / "runs")
    res = results(run)
    assert len(res) == 3
    assert all(r["completion_tokens"] > 0 and r["answer"] for r in res)
    ready = next(r for r in journal(run) if r["event"] == "agent_ready")
    assert ready["engine"] == "mlc" and ready["model"] == "smollm2-135m-instruct"
    assert ready["context_length"] == 8192
    summary = json.loads((run / "summary.json").read_text())
    assert summary["tokens_per_s"] and summary["tokens_per_s"] > 1


def test_react_on_the_default_model_executes_or_records_every_tool_call(tmp_path: Path) -> None:
    f = tmp_path / "react.toml"
    f.write_text(
        (REPO / "scenarios" / "react-gsm8k.toml")
        .read_text()
        .replace("limit = 10", "limit = 2")
        .replace("max_tokens = 128", "max_tokens = 64")
    )
    p = run_cli(str(f), "--out", str(tmp_path / "runs"), "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path / "runs")
    assert len(results(run)) == 2
    recs = journal(run)
    calls = [r for r in recs if r["event"] == "envelope" and r["kind"] == "tool_call"]
    outcomes = [r for r in recs if r["event"] == "envelope" and r["kind"] == "tool_result"]
    assert len(calls) == len(outcomes)  # every call that was made ran and came back
    for out in outcomes:  # ... and each failed one is a recorded tool failure citing it
        if out["body"]["error"]:
            assert any(
                r["event"] == "failure" and out["msg_id"] in r.get("evidence", []) for r in recs
            )
    replies = [r for r in recs if r["event"] == "envelope" and r["kind"] == "reply"]
    accounted = (
        len(calls)
        + sum(
            1
            for r in recs
            if r["event"] == "failure" and r["kind"] in ("tool_call_malformed", "no_final_answer")
        )
        + sum(1 for r in recs if r["event"] == "phase" and r["phase"] == "done")
    )
    assert accounted >= len(replies)  # no model turn fell through unrecorded


def test_replay_of_a_default_model_run_is_identical(tmp_path: Path) -> None:
    f = tmp_path / "solo.toml"
    f.write_text(
        (REPO / "scenarios" / "solo-gsm8k.toml")
        .read_text()
        .replace("limit = 10", "limit = 2")
        .replace("max_tokens = 192", "max_tokens = 48")
    )
    p = run_cli(str(f), "--out", str(tmp_path / "runs"), "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path / "runs")
    q = run_cli("replay", str(run), "--out", str(tmp_path / "replays"), "--quiet", cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    assert "replay: 2/2 task results identical" in q.stdout
    again = only_run_dir(tmp_path / "replays")
    assert [r["answer"] for r in results(again)] == [r["answer"] for r in results(run)]
    ready = next(r for r in journal(again) if r["event"] == "agent_ready")
    assert ready["engine"] == "replay"
