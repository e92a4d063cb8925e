"""The seed study's comparison: Table 2, winners per task type, failure mix, paired tests.

Runs are grouped by what must be equal for a comparison — model, worked examples, seed and
suite — and within a group each run is one paradigm (``solo`` = Base, ``react`` = SAS,
``router`` = MAS; other protocols keep their name). Metrics follow the seed paper:

- quality per task: 1/0 for correct, ROUGE-L F1 for summaries, 0 without a final answer;
- NRQ (normalized response quality vs base): per task type ``(Q - Q_base) / Q_base``,
  averaged over the task types where the base quality is above zero (how many is shown);
- completion: the share of tasks with a valid final response, right or wrong;
- latency, tokens per sample, tokens/s, energy per token ("n/a" unless measured);
- cost per correct answer: all tokens (prompt + completion) divided by correct answers.

Paired tests for every pair of paradigms in a group, on the tasks both ran: exact McNemar on
correct/wrong; for the quality difference (the test for graded quality such as ROUGE) a
paired sign-flip randomization test and a paired-bootstrap 95% interval; overall and per task
type, with Holm-adjusted McNemar p-values over the group's family of tests.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentsim.report.stats import holm, mcnemar_exact, paired_bootstrap, sign_flip_p
from agentsim.report.summary import wilson

PARADIGM = {"solo": "Base", "react": "SAS", "router": "MAS"}
# The seed's failure modes (Fig. 4), each task that ended without a final answer counted once,
# under the first of these its failures show.
FAILURE_MODES: list[tuple[str, frozenset[str]]] = [
    ("context length exceeded", frozenset({"context_overflow"})),
    ("timeout", frozenset({"message_timeout", "agent_unresponsive", "agent_crash"})),
    ("delegation loop", frozenset({"delegation_loop", "deadlock"})),
    ("no delegation", frozenset({"no_delegation"})),
    ("delegation failure", frozenset({"misrouting", "role_violation"})),
    ("no final answer", frozenset({"no_final_answer", "unaware_of_termination"})),
    (
        "malformed tool call",
        frozenset({"tool_call_malformed", "unknown_tool", "invalid_tool_arguments"}),
    ),
    ("repetition", frozenset({"livelock", "step_repetition"})),
]


@dataclass
class StudyRun:
    """One run folder as the study sees it."""

    path: Path
    paradigm: str
    kind: str
    model: str
    examples: int
    style: str
    seed: int
    suite: str
    summary: dict[str, Any]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def group(self) -> tuple[str, int, int, str]:
        return (self.model, self.examples, self.seed, self.suite)


def load_run(path: Path) -> StudyRun:
    sc = json.loads((path / "scenario.json").read_text())
    summary = json.loads((path / "summary.json").read_text())
    proto = sc.get("protocol", {})
    kind = str(proto.get("kind", ""))
    agents = proto.get("agents") or list(sc.get("agents", {}))
    model = str(sc.get("agents", {}).get(agents[0], {}).get("model", "")) if agents else ""
    results: dict[str, dict[str, Any]] = {}
    res_path = path / "results.jsonl"
    if res_path.is_file():
        for line in res_path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                results[str(r["task_id"])] = r
    return StudyRun(
        path=path,
        paradigm=PARADIGM.get(kind, kind),
        kind=kind,
        model=model,
        examples=int(sc.get("tasks", {}).get("examples", 0)),
        style=str(proto.get("prompt_style", "default")),
        seed=int(sc.get("run", {}).get("seed", 0)),
        suite=str(sc.get("tasks", {}).get("suite", "")),
        summary=summary,
        results=results,
    )


def _norm(text: str) -> str:
    return " ".join(text.lower().replace(",", "").split())


def initial_vote(run: StudyRun) -> StudyRun | None:
    """For a debate run: the majority of its first-round answers, scored on the same tasks.

    This is Choi et al.'s decomposition on the very same samples: what majority voting over
    the debaters' independent first answers would have scored, before any agent saw another.
    An answer counts as correct when the extracted answer equals the gold after lowercasing
    (how label and number scorers extract); ties go to the first agent, as in ``vote``.
    """
    if run.kind != "debate":
        return None
    results: dict[str, dict[str, Any]] = {}
    for tid, r in run.results.items():
        history = (r.get("extra") or {}).get("history") or []
        first: dict[str, str] = dict(history[0]) if history else {}
        counts: dict[str, int] = {}
        for answer in first.values():
            counts[_norm(answer)] = counts.get(_norm(answer), 0) + 1
        winner = max(counts, key=lambda a: counts[a]) if counts else ""
        ok = bool(winner) and winner == _norm(str(r.get("gold", "")))
        results[tid] = {
            **r,
            "correct": ok,
            "quality": 1.0 if ok else 0.0,
            "completed": bool(winner),
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }
    n = max(1, len(results))
    correct = sum(1 for r in results.values() if r["correct"])
    lo, hi = wilson(correct, len(results))
    summary = {
        **run.summary,
        "accuracy": round(correct / n, 4),
        "accuracy_ci95": [round(lo, 4), round(hi, 4)],
        "completion_rate": round(sum(1 for r in results.values() if r["completed"]) / n, 4),
        "tokens_per_s": None,
        "energy_j_per_token": None,
    }
    return StudyRun(
        path=run.path,
        paradigm="vote (debate round 1)",
        kind="vote-derived",
        model=run.model,
        examples=run.examples,
        style=run.style,
        seed=run.seed,
        suite=run.suite,
        summary=summary,
        results=results,
    )


def groups(runs: list[StudyRun]) -> dict[tuple[str, int, int, str], list[StudyRun]]:
    out: dict[tuple[str, int, int, str], list[StudyRun]] = {}
    for run in runs:
        out.setdefault(run.group, []).append(run)
    for members in out.values():
        labels = [m.paradigm for m in members]
        for m in members:
            if labels.count(m.paradigm) > 1:
                m.paradigm = f"{m.paradigm} ({config_name(m.path)})"
    return out


def config_name(path: Path) -> str:
    """A run folder's configuration name: its folder name without the ``-YYYYMMDD-HHMMSS``."""
    parts = path.name.rsplit("-", 2)
    return parts[0] if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() else path.name


def quality(r: dict[str, Any]) -> float:
    q = r.get("quality")
    return float(q) if q is not None else (1.0 if r.get("correct") else 0.0)


def _cats(run: StudyRun) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in run.results.values():
        out.setdefault(str(r.get("category") or "all"), []).append(r)
    return out


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def nrq(run: StudyRun, base: StudyRun | None) -> tuple[float | None, int, int]:
    """``(NRQ, types used, types)`` of ``run`` against ``base`` (see the module docstring)."""
    if base is None:
        return (None, 0, 0)
    mine, theirs = _cats(run), _cats(base)
    gains = []
    for cat, rows in mine.items():
        qb = _mean([quality(r) for r in theirs.get(cat, [])])
        if qb > 0:
            gains.append((_mean([quality(r) for r in rows]) - qb) / qb)
    return (sum(gains) / len(gains) if gains else None, len(gains), len(mine))


def table_row(run: StudyRun, base: StudyRun | None) -> dict[str, Any]:
    s = run.summary
    rows = list(run.results.values())
    n = max(1, len(rows))
    tokens = sum(int(r.get("prompt_tokens", 0)) + int(r.get("completion_tokens", 0)) for r in rows)
    correct = sum(1 for r in rows if r.get("correct"))
    value, used, total = nrq(run, base)
    derived = run.kind == "vote-derived"  # no cost of its own: it reuses the debate's samples
    return {
        "model": run.model,
        "examples": run.examples,
        "paradigm": run.paradigm,
        "style": run.style if run.kind in ("react", "router") else "-",
        "tasks": len(rows),
        "accuracy": s.get("accuracy", 0.0),
        "ci95": s.get("accuracy_ci95", [0.0, 0.0]),
        "quality": round(_mean([quality(r) for r in rows]), 4),
        "nrq": None if value is None else round(value, 4),
        "nrq_types": f"{used}/{total}",
        "completion_rate": s.get("completion_rate", 0.0),
        "latency_mean_s": None
        if derived
        else round(sum(float(r.get("latency_s", 0.0)) for r in rows) / n, 3),
        "tokens_per_sample": None if derived else round(tokens / n, 1),
        "tokens_per_s": s.get("tokens_per_s"),
        "energy_j_per_token": s.get("energy_j_per_token"),
        "tokens_per_correct": round(tokens / correct, 1) if correct and not derived else None,
    }


def failure_mix(run: StudyRun) -> dict[str, int]:
    """Tasks without a final answer, by the seed's failure mode (first that applies)."""
    mix: dict[str, int] = {}
    for r in run.results.values():
        if r.get("completed"):
            continue
        kinds = set(r.get("failures", []))
        mode = next((name for name, ks in FAILURE_MODES if kinds & ks), "other")
        mix[mode] = mix.get(mode, 0) + 1
    return mix


def paired_tests(a: StudyRun, b: StudyRun) -> list[dict[str, Any]]:
    """McNemar + bootstrap for ``a`` vs ``b``, on all shared tasks and per task type."""
    shared = sorted(set(a.results) & set(b.results))
    by_cat: dict[str, list[str]] = {"all": shared}
    for tid in shared:
        by_cat.setdefault(str(a.results[tid].get("category") or "all"), []).append(tid)
    out = []
    for cat, ids in by_cat.items():
        if cat != "all" and len(by_cat) == 2:
            continue  # one type only: its row would repeat "all"
        ra = [a.results[t] for t in ids]
        rb = [b.results[t] for t in ids]
        only_a = sum(
            1 for x, y in zip(ra, rb, strict=True) if x.get("correct") and not y.get("correct")
        )
        only_b = sum(
            1 for x, y in zip(ra, rb, strict=True) if y.get("correct") and not x.get("correct")
        )
        qa, qb = [quality(x) for x in ra], [quality(y) for y in rb]
        diff, lo, hi, _ = paired_bootstrap(qa, qb, seed=len(ids))
        p_flip = sign_flip_p(qa, qb, seed=len(ids))
        out.append(
            {
                "a": a.paradigm,
                "b": b.paradigm,
                "category": cat,
                "n": len(ids),
                "acc_a": round(_mean([1.0 if x.get("correct") else 0.0 for x in ra]), 4),
                "acc_b": round(_mean([1.0 if y.get("correct") else 0.0 for y in rb]), 4),
                "only_a": only_a,
                "only_b": only_b,
                "p_mcnemar": mcnemar_exact(only_a, only_b),
                "quality_diff": round(diff, 4),
                "ci95": [round(lo, 4), round(hi, 4)],
                "p_quality": p_flip,
            }
        )
    return out


def study(runs: list[StudyRun]) -> list[dict[str, Any]]:
    """One entry per group: rows, per-type quality and winners, failure mix, paired tests."""
    out = []
    for key, members in groups(runs).items():
        base = next((m for m in members if m.kind == "solo"), None)
        rows = [table_row(m, base) for m in members]
        cats = sorted({c for m in members for c in _cats(m)})
        per_type: dict[str, dict[str, Any]] = {}
        tests = [t for a, b in itertools.combinations(members, 2) for t in paired_tests(a, b)]
        for t, p in zip(tests, holm([t["p_mcnemar"] for t in tests]), strict=True):
            t["p_holm"] = p
        for cat in cats:
            q = {
                m.paradigm: round(_mean([quality(r) for r in _cats(m).get(cat, [])]), 4)
                for m in members
            }
            best = max(q.values())
            winners = [p for p, v in q.items() if v == best]
            per_type[cat] = {
                "quality": q,
                "winner": winners[0] if len(winners) == 1 else "tie (" + ", ".join(winners) + ")",
            }
        out.append(
            {
                "model": key[0],
                "examples": key[1],
                "seed": key[2],
                "suite": key[3],
                "rows": rows,
                "per_type": per_type,
                "failure_mix": {m.paradigm: failure_mix(m) for m in members},
                "tests": tests,
            }
        )
    return out


def examples_effect(runs: list[StudyRun]) -> list[dict[str, Any]]:
    """Paired tests of each paradigm with worked examples against itself without them.

    Runs pair when model, seed, suite and protocol kind agree and ``examples`` differs; the
    tests run on the tasks both hold. Holm-adjusted over this family.
    """
    by: dict[tuple[str, int, str, str], dict[int, StudyRun]] = {}
    for r in runs:
        if r.kind == "vote-derived":
            continue
        slot = by.setdefault((r.model, r.seed, r.suite, r.kind), {})
        if r.examples in slot:  # two runs of one setting: ambiguous, leave the pair out
            slot[r.examples] = slot.get(-1, r)
            continue
        slot[r.examples] = r
    tests: list[dict[str, Any]] = []
    for (_model, _seed, _suite, kind), slot in sorted(by.items()):
        name = PARADIGM.get(kind, kind)
        shots = sorted(k for k in slot if k >= 0)
        for lo, hi in itertools.combinations(shots, 2):
            a, b = slot[hi], slot[lo]
            for t in paired_tests(a, b):
                t["a"], t["b"] = f"{name} ex{hi}", f"{name} ex{lo}"
                t["model"] = a.model
                tests.append(t)
    for t, p in zip(tests, holm([t["p_mcnemar"] for t in tests]), strict=True):
        t["p_holm"] = p
    return tests
