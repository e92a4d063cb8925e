"""NRQ, completion, failure mix and paired tests computed from crafted journals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentsim.report.compare import write_comparison
from agentsim.report.stats import binom_cdf, holm, mcnemar_exact, paired_bootstrap, sign_flip_p
from agentsim.report.study import examples_effect, initial_vote, load_run, nrq, study
from agentsim.report.summary import summarize


def _result(tid: str, cat: str, correct: bool, completed: bool, **kw: Any) -> dict[str, Any]:
    return {
        "event": "task_result",
        "task_id": tid,
        "category": cat,
        "correct": correct,
        "completed": completed,
        "quality": kw.pop("quality", 1.0 if correct else 0.0),
        "prompt_tokens": kw.pop("prompt_tokens", 100),
        "completion_tokens": kw.pop("completion_tokens", 10),
        "decode_s": 0.5,
        "latency_s": kw.pop("latency_s", 1.0),
        "failures": kw.pop("failures", []),
        "gold": kw.pop("gold", "x"),
        "extra": kw.pop("extra", {}),
        **kw,
    }


def _journal(protocol: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = [
        {
            "event": "run_start",
            "run_id": protocol,
            "scenario": "s",
            "protocol": protocol,
            "seed": 1,
        },
        {"event": "tasks_loaded", "count": len(results)},
    ]
    for r in results:
        recs.extend({"event": "failure", "kind": k, "task_id": r["task_id"]} for k in r["failures"])
        recs.append(r)
    recs.append({"event": "energy", "joules": None, "sources": []})
    recs.append({"event": "run_end", "completed": True, "t": 9.0})
    return recs


def _write_run(root: Path, name: str, kind: str, results: list[dict[str, Any]]) -> Path:
    run = root / name
    run.mkdir(parents=True)
    recs = _journal(kind, results)
    (run / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    (run / "summary.json").write_text(json.dumps(summarize(recs)))
    agents = ["a", "b", "c"] if kind == "debate" else ["a"]
    scenario = {
        "run": {"seed": 1},
        "tasks": {"suite": "study", "examples": 0},
        "agents": {a: {"model": "m"} for a in agents},
        "protocol": {"kind": kind, "agents": agents, "prompt_style": "seed"},
    }
    (run / "scenario.json").write_text(json.dumps(scenario))
    return run


# Base: sentiment 8/10 right, summaries quality 0.5 each; SAS: sentiment 2/10, summaries 0.6;
# SAS completes 5 of its 20 tasks (the other 15 ended by unaware_of_termination).
def _base() -> list[dict[str, Any]]:
    return [_result(f"s{i}", "sentiment", i < 8, True) for i in range(10)] + [
        _result(f"m{i}", "summarization", False, True, quality=0.5) for i in range(10)
    ]


def _sas() -> list[dict[str, Any]]:
    out = [
        _result(
            f"s{i}", "sentiment", i < 2, i < 2, failures=[] if i < 2 else ["unaware_of_termination"]
        )
        for i in range(10)
    ]
    out += [
        _result(
            f"m{i}",
            "summarization",
            i < 3,
            i < 3,
            quality=0.6 if i < 3 else 0.0,
            failures=[] if i < 3 else ["tool_call_malformed", "livelock"],
        )
        for i in range(10)
    ]
    return out


def test_summary_completion_and_per_type_metrics_from_a_journal() -> None:
    s = summarize(_journal("react", _sas()))
    assert s["completion_rate"] == pytest.approx(5 / 20)
    assert s["by_category"]["sentiment"]["completion_rate"] == pytest.approx(0.2)
    assert s["by_category"]["summarization"]["quality"] == pytest.approx(0.18)
    assert s["by_category"]["sentiment"]["tokens_per_sample"] == pytest.approx(110.0)
    assert s["energy_j_per_token"] is None  # nothing measured: never a made-up number
    assert s["quality"] == pytest.approx((2 + 3 * 0.6) / 20)


def test_nrq_is_the_mean_relative_quality_change_per_task_type(tmp_path: Path) -> None:
    base = load_run(_write_run(tmp_path, "base", "solo", _base()))
    sas = load_run(_write_run(tmp_path, "sas", "react", _sas()))
    # sentiment: (0.2 - 0.8) / 0.8 = -0.75; summarization: (0.18 - 0.5) / 0.5 = -0.64
    value, used, total = nrq(sas, base)
    assert (used, total) == (2, 2)
    assert value == pytest.approx((-0.75 - 0.64) / 2)
    assert nrq(base, base)[0] == pytest.approx(0.0)


def test_study_tables_failure_mix_and_paired_tests(tmp_path: Path) -> None:
    _write_run(tmp_path, "base", "solo", _base())
    _write_run(tmp_path, "sas", "react", _sas())
    (group,) = study([load_run(tmp_path / "base"), load_run(tmp_path / "sas")])
    rows = {r["paradigm"]: r for r in group["rows"]}
    assert rows["SAS"]["completion_rate"] == pytest.approx(0.25)
    assert rows["Base"]["tokens_per_correct"] == pytest.approx(20 * 110 / 8)
    assert group["per_type"]["sentiment"]["winner"] == "Base"
    assert group["per_type"]["summarization"]["winner"] == "Base"
    # 15 incomplete SAS tasks: 8 sentiment ran out of turns, 7 summaries looped on bad calls
    assert group["failure_mix"]["SAS"] == {"no final answer": 8, "malformed tool call": 7}
    assert group["failure_mix"]["Base"] == {}
    tests = {t["category"]: t for t in group["tests"]}
    senti = tests["sentiment"]
    assert (senti["only_a"], senti["only_b"]) == (6, 0)  # tasks s2..s7
    assert senti["p_mcnemar"] == pytest.approx(2 * 0.5**6)
    assert tests["summarization"]["only_b"] == 3
    lo, hi = tests["summarization"]["ci95"]
    assert lo <= tests["summarization"]["quality_diff"] <= hi
    assert all(t["p_holm"] >= t["p_mcnemar"] for t in group["tests"])


def test_compare_writes_the_study_page(tmp_path: Path) -> None:
    runs = [
        _write_run(tmp_path, "base", "solo", _base()),
        _write_run(tmp_path, "sas", "react", _sas()),
    ]
    text = write_comparison(runs, tmp_path / "out")
    page = (tmp_path / "out" / "study.md").read_text()
    assert page in text
    assert "| Base vs SAS | sentiment | 10 | 0.800 | 0.200 | 6 | 0 | 0.031" in page
    assert "Base > SAS on sentiment (McNemar p = 0.031" in page
    assert "| SAS | seed | 20 |" in page and "n/a" in page  # J/token not measured
    html = (tmp_path / "out" / "study.html").read_text()
    assert "<td>Base vs SAS</td><td>sentiment</td><td>10</td>" in html
    assert (tmp_path / "out" / "failure_mix.png").stat().st_size > 1000


def test_examples_effect_pairs_a_paradigm_with_itself(tmp_path: Path) -> None:
    _write_run(tmp_path, "base0", "solo", _base())
    with_examples = [dict(r, correct=True, quality=1.0) for r in _base()]
    run = _write_run(tmp_path / "x", "base2", "solo", with_examples)
    sc = json.loads((run / "scenario.json").read_text())
    sc["tasks"]["examples"] = 2
    (run / "scenario.json").write_text(json.dumps(sc))
    tests = examples_effect([load_run(tmp_path / "base0"), load_run(run)])
    by = {t["category"]: t for t in tests}
    assert by["sentiment"]["a"] == "Base ex2" and by["sentiment"]["b"] == "Base ex0"
    assert (by["sentiment"]["only_a"], by["sentiment"]["only_b"]) == (2, 0)
    assert by["summarization"]["only_a"] == 10
    assert by["summarization"]["p_mcnemar"] == pytest.approx(2 / 1024)
    text = write_comparison([tmp_path / "base0", run], tmp_path / "out")
    assert "Worked examples: each paradigm with examples vs without" in text


def test_initial_vote_of_a_debate_scores_the_first_round_majority(tmp_path: Path) -> None:
    results = [
        _result(
            "t0",
            "sentiment",
            False,
            True,
            gold="positive",
            extra={"history": [{"a": "positive", "b": "positive", "c": "negative"}, {}]},
        ),
        _result(
            "t1",
            "sentiment",
            True,
            True,
            gold="negative",
            extra={"history": [{"a": "positive", "b": "neutral", "c": "positive"}, {}]},
        ),
    ]
    derived = initial_vote(load_run(_write_run(tmp_path, "debate", "debate", results)))
    assert derived is not None
    assert derived.results["t0"]["correct"] and not derived.results["t1"]["correct"]
    assert derived.paradigm == "vote (debate round 1)"


def test_exact_mcnemar_binomial_and_holm_values() -> None:
    assert binom_cdf(0, 6) == pytest.approx(1 / 64)
    assert mcnemar_exact(6, 0) == pytest.approx(1 / 32)
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    mean, lo, hi, p = paired_bootstrap([1, 1, 1, 0], [0, 0, 0, 0], seed=1)
    assert mean == pytest.approx(0.75) and 0.0 <= lo <= mean <= hi <= 1.0
    assert 0.0 < p < 0.1  # resamples of all zeros (prob 1/256) are the only ones at <= 0
    assert paired_bootstrap([0.5] * 30, [0.2] * 30)[3] == pytest.approx(1 / 5000)
    assert paired_bootstrap([1, 0], [1, 0])[3] == 1.0
    _, lo2, hi2, p2 = paired_bootstrap([1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1], seed=2)
    assert lo2 < 0 < hi2 and p2 > 0.05
    # sign flips: 10 equal positive differences -> only the two all-same-sign flips reach it
    assert sign_flip_p([0.3] * 10, [0.0] * 10) == pytest.approx(2 / 1024)
    assert sign_flip_p([1.0], [0.0]) == 1.0  # one task can never be significant
    assert sign_flip_p([1, 1, 0], [1, 1, 0]) == 1.0
    # diffs 1,1,1,1,-1 (sum 3): |sum| >= 3 for 0, 1, 4 or 5 flips: (1 + 5 + 5 + 1) / 32
    assert sign_flip_p([1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1]) == pytest.approx(12 / 32)
    big = sign_flip_p([1.0] * 30, [0.0] * 30, seed=1)  # Monte Carlo past 16 pairs
    assert big == pytest.approx(1 / 20001)
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap([1.0], [1.0, 0.0])
