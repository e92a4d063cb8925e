"""The generators' answers, recomputed here by a second, independent implementation.

Each check reads only the task text (and, for the Factbook, the raw corpus lines) and
computes the answer another way: regexes + Decimal instead of the generators' Fractions,
inclusion–exclusion instead of counting, trial division instead of a sieve, fast doubling
instead of iteration.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

import pytest

from agentsim.tasks import load_suite
from agentsim.tasks.base import Task
from agentsim.tasks.factbook import countries, factbook_tasks, financial_tasks, split_of
from agentsim.tasks.study import TYPES, load_study
from agentsim.tasks.synth import (
    arithmetic_tasks,
    ner_tasks,
    program_tasks,
    sentiment_tasks,
    summarization_tasks,
)
from agentsim.tools.search import CORPUS_PATH

N = 60


def _ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", text)]


def test_arithmetic_answers_recomputed_from_the_wording() -> None:
    for t in arithmetic_tasks(N) + arithmetic_tasks(N, split="examples"):
        q = t.question
        if "received" in q:
            a, b, c = _ints(q.split("held", 1)[1])
            want = a + b - c
        elif "units at" in q:
            a, b = _ints(q.split("sold", 1)[1])
            want = a * b
        elif "splits" in q:
            a, b = _ints(q.split("pool of", 1)[1])
            assert a % b == 0, q
            want = a // b
        else:
            a, b, c = _ints(q.split("bought", 1)[1])
            want = a * b + c
        assert t.answer == str(want), q


def _fib(n: int) -> int:
    def doubling(k: int) -> tuple[int, int]:
        if k == 0:
            return (0, 1)
        a, b = doubling(k // 2)
        c, d = a * (2 * b - a), a * a + b * b
        return (d, c + d) if k % 2 else (c, d)

    return doubling(n)[0]


def _digit_sum(x: int) -> int:
    total = 0
    while x:
        x, r = divmod(x, 10)
        total += r
    return total


def _is_prime(k: int) -> bool:
    return k >= 2 and all(k % d for d in range(2, math.isqrt(k) + 1))


def test_program_answers_recomputed_another_way() -> None:
    for t in program_tasks(N) + program_tasks(N, split="examples"):
        q = t.question
        nums = _ints(q)
        if "divisible" in q:
            _, lim, a, b = nums
            want = lim // a + lim // b - lim // math.lcm(a, b)
        elif "decimal digits" in q:
            base, exp = nums
            want = _digit_sum(base**exp)
        elif "prime" in q:
            (lim,) = nums
            want = sum(1 for k in range(lim) if _is_prime(k))
        elif "Fibonacci" in q:
            want = _fib(nums[-1])
        else:
            m = nums[-1]
            want = sum(k * k for k in range(1, m + 1))
        assert t.answer == str(want), q
        assert t.meta["steps"][0]["output"] == t.answer


_POSITIVE_CUES = ("jump", "raises", "wins", "beats", "surges", "upgrade")
_NEGATIVE_CUES = ("slump", "cuts", "loss", "misses", "fine", "suspends")


def test_sentiment_labels_agree_with_a_cue_lexicon() -> None:
    tasks = sentiment_tasks(N) + sentiment_tasks(N, split="examples")
    for t in tasks:
        headline = t.question.split("Headline: ", 1)[1].lower()
        pos = any(c in headline for c in _POSITIVE_CUES)
        neg = any(c in headline for c in _NEGATIVE_CUES)
        want = "positive" if pos and not neg else "negative" if neg and not pos else "neutral"
        assert t.answer == want, headline
    assert {t.answer for t in tasks} == {"positive", "negative", "neutral"}


def test_ner_gold_is_the_entity_of_the_asked_kind() -> None:
    for t in ner_tasks(N):
        kind = re.search(r"name of the (\w+) mentioned", t.question).group(1)  # type: ignore[union-attr]
        sentence = t.question.split("Sentence: ", 1)[1]
        assert t.answer in sentence
        if kind == "person":
            assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", t.answer)
        elif kind == "company":
            assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", t.answer)
            assert t.answer not in re.findall(
                r"[A-Z][a-z]+ [A-Z][a-z]+(?=, (?:chief|its))", sentence
            )
        else:
            assert t.answer in {c.name for c in countries()}


def test_summaries_carry_the_report_figures() -> None:
    for t in summarization_tasks(N):
        report = t.question.split("Report: ", 1)[1]
        m = re.match(
            r"(.+?) said on Tuesday that its (\w+)-quarter revenue (rose|fell) (\d+)% to \$(\d+) million",
            report,
        )
        assert m, report
        co, quarter, verb, p, mil = m.groups()
        net = re.search(r"Net profit was \$(\d+) million", report).group(1)  # type: ignore[union-attr]
        assert t.answer == (
            f"{co} {quarter}-quarter revenue {verb} {p}% to ${mil} million, with net profit of ${net} million."
        )


@cache
def _raw() -> dict[str, str]:
    with gzip.open(CORPUS_PATH, "rt", encoding="utf-8") as f:
        return {d["title"]: d["text"] for d in map(json.loads, f)}


def _value(country: str, field: str, year: int) -> Decimal:
    """The ``YEAR: value`` figure of a Factbook field, parsed with Decimal (dollars or %)."""
    text = _raw()[f"{country} - Economy - {field}"]
    for part in text.split(";"):
        m = re.search(rf"{year}:\s*(-?)\$?([\d,.]+)\s*(%|billion|million|trillion)?", part)
        if m:
            sign, num, unit = m.groups()
            scale = {"trillion": 10**12, "billion": 10**9, "million": 10**6}.get(unit or "", 1)
            value = Decimal(num.replace(",", "")) * scale
            return -value if sign else value
    raise AssertionError(f"no {year} figure in {country} {field}: {text}")


def _round(x: Decimal, places: int) -> Decimal:
    return x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


_FIELDS = {
    "real GDP growth rate": "Real GDP growth rate",
    "inflation rate": "Inflation rate (consumer prices)",
    "unemployment rate": "Unemployment rate",
}


def _recompute_financial(t: Task) -> str:
    q = t.question
    if "ratio of the exports" in q:
        c = re.search(r"exports of (.+) to its imports", q).group(1)  # type: ignore[union-attr]
        return str(_round(_value(c, "Exports", 2024) / _value(c, "Imports", 2024), 2))
    if "percent did the exports" in q:
        c = re.search(r"exports of (.+) change", q).group(1)  # type: ignore[union-attr]
        a, b = _value(c, "Exports", 2024), _value(c, "Exports", 2023)
        return str(_round((a / b - 1) * 100, 1))
    label = next(k for k in _FIELDS if k in q)
    field = _FIELDS[label]
    if "which country" in q:
        m = re.search(r"2024: (.+) or (.+)\?$", q)
        a, b = m.groups()  # type: ignore[union-attr]
        return a if _value(a, field, 2024) > _value(b, field, 2024) else b
    c = re.search(rf"{label} of (.+?) (?:in 2023|change)", q).group(1)  # type: ignore[union-attr]
    if "percentage points" in q:
        return str(_round(_value(c, field, 2024) - _value(c, field, 2023), 1))
    return str(_round(_value(c, field, 2023), 1))


def _same_number(a: str, b: str) -> bool:
    try:
        return Decimal(a) == Decimal(b)
    except ArithmeticError:
        return a == b


@pytest.mark.parametrize("split", ["test", "examples"])
def test_financial_answers_recomputed_from_the_raw_corpus(split: str) -> None:
    tasks = financial_tasks(N, split=split)
    assert {t.meta["shape"] for t in tasks} == {
        "lookup",
        "difference",
        "ratio",
        "growth",
        "compare",
    }
    for t in tasks:
        want = _recompute_financial(t)
        assert _same_number(t.answer, want), (t.question, t.answer, want)


def test_fact_answers_recomputed_from_the_raw_corpus() -> None:
    raw = _raw()
    for t in factbook_tasks(N):
        c = t.meta["country"]
        q = t.question
        if "capital" in q:
            text = raw[f"{c} - Government - Capital"]
            want = text.split("name:", 1)[1].split(";")[0].split("(")[0].strip()
        elif "internet" in q:
            want = raw[f"{c} - Communications - Internet country code"].strip()
        elif "area" in q:
            want = re.search(r"total\s*:\s*([\d,]+)", raw[f"{c} - Geography - Area"]).group(1)  # type: ignore[union-attr]
        else:
            text = raw[f"{c} - People and Society - Population"]
            want = re.search(r"total:\s*([\d,]+)", text).group(1)  # type: ignore[union-attr]
        assert t.answer == want.replace(",", ""), q


def test_examples_come_from_held_apart_countries_and_carry_real_tool_output() -> None:
    tasks = load_study("study", examples=2, seed=5)
    again = load_study("study", examples=2, seed=5)
    assert [t.meta["examples"] for t in tasks] == [t.meta["examples"] for t in again]
    test_questions = {t.question for t in tasks}
    for t in tasks:
        shots = t.meta["examples"]
        assert len(shots) == 2
        for ex in shots:
            assert ex["question"] not in test_questions
            for step in ex["steps"]:
                assert step["output"], step
    for t in factbook_tasks(40):
        assert split_of(t.meta["country"]) == "test"
    lookups = [
        ex
        for t in tasks
        if t.category == "factbook_qa"
        for ex in t.meta["examples"]
        if "internet" in str(ex["question"])
    ]
    for ex in lookups:  # the search tool's own answer shows the gold
        assert str(ex["answer"]) in ex["steps"][0]["output"]


def test_study_suite_interleaves_types_so_a_limit_is_balanced() -> None:
    tasks, scorer = load_suite("study", base_dir=__import__("pathlib").Path("."), limit=14)
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.category] = counts.get(t.category, 0) + 1
    assert counts == dict.fromkeys(TYPES, 2)
    assert scorer(tasks[0], f"Final Answer: {tasks[0].answer}").correct
