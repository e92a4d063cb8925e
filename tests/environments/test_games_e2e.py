"""Games end to end: the CLI, real agent processes, real ZeroMQ sockets, scripted strategies.

Payoffs and welfare are checked against outcomes computed by hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from agentsim.environments.metrics import game_summary
from agentsim.testing import journal, only_run_dir, pid_alive

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def run_cli(tmp: Path, scenario: Path) -> Path:
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", str(scenario), "--out", str(tmp / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp,
    )
    assert p.returncode == 0, p.stderr
    return only_run_dir(tmp / "runs")


def results(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x.strip()]


def test_tit_for_tat_vs_always_defect_over_ten_rounds(tmp_path: Path) -> None:
    f = tmp_path / "pd.toml"
    f.write_text(
        '[run]\nname = "tft-vs-ad"\nseed = 1\nheartbeat_s = 0.5\n'
        '[agents.tft]\nengine = "scripted"\noptions = { strategy = "tit_for_tat" }\n'
        '[agents.ad]\nengine = "scripted"\noptions = { strategy = "always_defect" }\n'
        "[protocol]\ndeadline_s = 30\n"
        '[environment]\nkind = "matrix_game"\nrounds = 10\nmatching = "fixed"\ngroups = [["tft", "ad"]]\n'
        "[environment.payoffs]\nC = { C = [3, 3], D = [0, 5] }\nD = { C = [5, 0], D = [1, 1] }\n"
    )
    run = run_cli(tmp_path, f)
    res = results(run)
    assert [r["task_id"] for r in res] == [f"round-{i:03d}" for i in range(1, 11)]
    answers = [json.loads(r["answer"]) for r in res]
    # round 1: tft C, ad D -> 0 / 5; rounds 2-10: D, D -> 1 / 1
    assert answers[0]["moves"] == {"tft": "C", "ad": "D"} and answers[0]["payoffs"] == {
        "tft": 0.0,
        "ad": 5.0,
    }
    assert all(a["moves"] == {"tft": "D", "ad": "D"} and a["welfare"] == 2.0 for a in answers[1:])
    assert not any(r["correct"] for r in res) and all(r["completed"] for r in res)
    recs = journal(run)
    game = game_summary(recs)
    assert game["payoff_by_agent"] == {"ad": 14.0, "tft": 9.0}
    assert (game["welfare"], game["social_optimum"], game["efficiency"]) == (23.0, 60.0, 0.3833)
    assert game["cooperation_by_round"] == [0.5] + [0.0] * 9 and game["cooperation"] == 0.05
    assert (game["payoff_spread"], game["payoff_mean"]) == (5.0, 11.5)
    pids = [r["pid"] for r in recs if r["event"] == "agent_ready"]
    assert len(set(pids)) == 2 and not any(pid_alive(p) for p in pids)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["tasks_done"] == 10 and summary["failures_total"] == 0 and not summary["partial"]


def test_scripted_scenario_round_robin_with_cheap_talk(tmp_path: Path) -> None:
    scenario = tmp_path / "prisoners-dilemma-scripted.toml"
    shutil.copy(SCENARIOS / scenario.name, scenario)
    run = run_cli(tmp_path, scenario)
    recs = journal(run)
    game = game_summary(recs)
    # pairs by round: (ac,gt)(ad,tft) / (ac,tft)(gt,ad) / (ac,ad)(tft,gt), then again.
    # tft copies its partner's last move; gt defects forever once anyone defected on it.
    # r1: CC 3/3, DC ad 5 tft 0 | r2: CC 3/3, gt C ad D 0/5 | r3: ac C ad D 0/5, tft C gt D 0/5
    # r4: ac C gt D 0/5, DD 1/1 | r5: CC 3/3, DD 1/1 | r6: ac C ad D 0/5, DD 1/1
    assert game["payoff_by_agent"] == {"ac": 9.0, "ad": 22.0, "gt": 15.0, "tft": 8.0}
    assert game["welfare_by_round"] == [11.0, 11.0, 10.0, 7.0, 8.0, 7.0]
    assert (game["welfare"], game["social_optimum"]) == (54.0, 72.0)
    assert game["cooperation_by_round"] == [0.75, 0.75, 0.5, 0.25, 0.5, 0.25]
    # ad promises C every round and defects; honest agents announce what they play
    assert (game["promises"], game["promises_broken"]) == (18, 6)
    broken = [r for r in recs if r["event"] == "failure" and r["kind"] == "promise_broken"]
    assert {tuple(f["agents"]) for f in broken} == {("ad",)} and len(broken) == 6
    peers = [
        r for r in recs if r["event"] == "envelope" and r["kind"] == "peer" and r["dir"] == "in"
    ]
    assert len(peers) == 4 * 6  # one talk message per player per round, agent -> agent
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failures"] == {"promise_broken": 6} and summary["tasks_done"] == 6
    (run / "summary.json").unlink()
    q = subprocess.run(
        [sys.executable, "-m", "agentsim", "report", str(run)], capture_output=True, text=True
    )
    assert q.returncode == 0, q.stderr
    assert json.loads((run / "summary.json").read_text()) == summary
    assert game_summary(journal(run)) == game
