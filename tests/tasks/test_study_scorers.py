"""The study's scorers against hand-checked replies."""

from __future__ import annotations

import pytest

from agentsim.tasks.base import Task
from agentsim.tasks.scoring import answer_region, lcs_length, rouge_l, score_task


def _task(answer: str, scorer: str, **meta: object) -> Task:
    return Task(id="t", question="q", answer=answer, meta={"scorer": scorer, **meta})


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("I think so.\nFinal Answer: 42", "42"),
        ("final answer: a\nFinal Answer: b", "b"),
        ("<think>x</think><final_answer> Lima </final_answer>", "Lima"),
        ('{"final_answer": "3.7"}', "3.7"),
        ("just words", "just words"),
    ],
)
def test_answer_region_finds_what_the_reply_commits_to(text: str, region: str) -> None:
    assert answer_region(text) == region


@pytest.mark.parametrize(
    ("text", "gold", "tol", "correct"),
    [
        ("Final Answer: 3.7", "3.7", "0.05", True),
        ("Final Answer: 3.74", "3.7", "0.05", True),
        ("Final Answer: 3.76", "3.7", "0.05", False),
        ("Final Answer: -0.4%", "-0.4", "0.05", True),
        ("Final Answer: 0.4", "-0.4", "0.05", False),
        ("The total is 1,234 dollars.", "1234", "", True),
        ("Final Answer: 1235", "1234", "", False),
        ("Final Answer: $83,325", "83325", "", True),
        ("no number here", "5", "", False),
    ],
)
def test_numeric_with_tolerance(text: str, gold: str, tol: str, correct: bool) -> None:
    assert score_task(_task(gold, "numeric", tolerance=tol), text).correct is correct


@pytest.mark.parametrize(
    ("text", "gold", "correct", "extracted"),
    [
        ("Final Answer: positive", "positive", True, "positive"),
        ("The sentiment is Negative.", "negative", True, "negative"),
        ("Final Answer: positive or negative", "negative", False, "positive"),
        ("Final Answer: neutral", "positive", False, "neutral"),
        ("Final Answer: good news", "positive", False, ""),
        ("Final Answer: Nigeria", "Niger", False, "Nigeria"),
        ("Final Answer: Niger", "Niger", True, "Niger"),
    ],
)
def test_choice_takes_the_first_named_option(
    text: str, gold: str, correct: bool, extracted: str
) -> None:
    choices = (
        ["positive", "negative", "neutral"]
        if gold in ("positive", "negative", "neutral")
        else ["Niger", "Nigeria"]
    )
    score = score_task(_task(gold, "choice", choices=choices), text)
    assert (score.correct, score.extracted) == (correct, extracted)


@pytest.mark.parametrize(
    ("text", "gold", "correct"),
    [
        ("Final Answer: Redfern Pharma", "Redfern Pharma", True),
        ("Final Answer: The company is Redfern Pharma", "Redfern Pharma", True),
        ("Final Answer: Redfern", "Redfern Pharma", False),
        (
            "Final Answer: In Denmark, Redfern Pharma agreed to buy a rival, said Tomas Novak",
            "Redfern Pharma",
            False,
        ),
        ("Final Answer: .pe", ".pe", True),
        ("Final Answer: pe", ".pe", False),
        ("Final Answer: lima", "Lima", True),
    ],
)
def test_span_needs_the_name_and_not_much_else(text: str, gold: str, correct: bool) -> None:
    assert score_task(_task(gold, "span"), text).correct is correct


def test_rouge_l_matches_hand_computed_values() -> None:
    # candidate 4 tokens, all in the 7-token reference in order: P = 1, R = 4/7
    ref = "Acme revenue rose 7% to $5 million"  # acme revenue rose 7 to 5 million: 7 tokens
    assert lcs_length(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 3
    assert lcs_length([], ["a"]) == 0
    cand = "revenue rose 7 million"
    p, r = 4 / 4, 4 / 7
    assert rouge_l(cand, ref) == pytest.approx(2 * p * r / (p + r))
    assert rouge_l("", ref) == 0.0
    assert rouge_l(ref, ref) == pytest.approx(1.0)


def test_rouge_scorer_sets_quality_and_threshold() -> None:
    task = _task("Acme revenue rose 7% to $5 million.", "rouge")
    good = score_task(task, "Final Answer: Acme revenue rose 7% to $5 million this quarter.")
    bad = score_task(task, "Final Answer: The weather was nice.")
    assert good.correct and good.quality is not None and good.quality > 0.8
    assert not bad.correct and bad.quality == 0.0
