"""GSM8K: grade-school maths word problems, scored on the final number."""

from __future__ import annotations

import re
from fractions import Fraction
from importlib import resources
from pathlib import Path

from agentsim.tasks.base import Score, Task
from agentsim.tasks.jsonl import load_jsonl

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def gsm8k_path() -> Path:
    return Path(str(resources.files("agentsim.tasks") / "data" / "gsm8k_test.jsonl"))


def load_gsm8k() -> list[Task]:
    """The 1,319 GSM8K test problems; the gold answer is the number after ``####``."""
    return [
        Task(id=f"gsm8k-{i}", question=t.question, answer=gold_number(t.answer), category="gsm8k")
        for i, t in enumerate(load_jsonl(gsm8k_path()))
    ]


def gold_number(answer: str) -> str:
    tail = answer.rsplit("####", 1)[-1]
    return normalize_number(tail) or tail.strip()


def normalize_number(text: str) -> str:
    """``"$1,250.00"`` → ``"1250"``; empty when ``text`` holds no number."""
    m = _NUMBER.search(text)
    if not m:
        return ""
    s = m.group(0).replace(",", "").replace("$", "")
    try:
        value = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return ""
    if value.denominator == 1:
        return str(value.numerator)
    return format(float(value), "g")


def extract_answer(text: str) -> str:
    """The number a model meant as its answer.

    Prefers an explicit marker (``#### 42``, ``Final Answer: 42``, ``answer is 42``,
    ``\\boxed{42}``); otherwise the last number in the text.
    """
    for pattern in (
        r"####\s*([^\n]+)",
        r"\\boxed\{([^}]*)\}",
        r"[Ff]inal [Aa]nswer\s*[:=]?\s*([^\n]+)",
        r"[Aa]nswer(?: is)?\s*[:=]?\s*([^\n]+)",
    ):
        found = re.findall(pattern, text)
        if found:
            n = normalize_number(found[-1])
            if n:
                return n
    numbers = _NUMBER.findall(text)
    return normalize_number(numbers[-1]) if numbers else ""


def score_numeric(task: Task, text: str) -> Score:
    got = extract_answer(text)
    gold = normalize_number(task.answer) or task.answer.strip()
    return Score(extracted=got, correct=bool(got) and got == gold)
