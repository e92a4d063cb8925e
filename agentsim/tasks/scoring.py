"""Scorers for the study's task types, chosen per task by ``task.meta["scorer"]``.

Every scorer first cuts out the answer the reply commits to (``answer_region``): the text
after the last ``Final Answer:``, inside ``<final_answer>`` tags, or a ``{"final_answer": ...}``
object; a reply with none of these is read whole (a bare model's answer).

- ``numeric``: the number in the answer equals the gold within ``meta["tolerance"]`` (exact
  when unset);
- ``choice``: of ``meta["choices"]``, the one named first in the answer is the gold (so
  "positive or negative" counts as "positive", and "Niger" is not found inside "Nigeria");
- ``span``: the gold appears in the answer as whole words and the answer is at most three words
  longer (copying the whole sentence does not count);
- ``rouge``: ROUGE-L F1 against the reference is the quality; correct when it is >= 0.4.
"""

from __future__ import annotations

import re
from fractions import Fraction

from agentsim.tasks.base import Score, Task
from agentsim.tasks.gsm8k import extract_answer, normalize_number

_FINAL_LINE = re.compile(r"final[ _]answer\s*[:=]\s*", re.I)
_FINAL_TAG = re.compile(r"<final_answer>(.*?)(?:</final_answer>|\Z)", re.S | re.I)
_FINAL_JSON = re.compile(r"\"final_answer\"\s*:\s*\"((?:[^\"\\]|\\.)*)\"", re.S)
_WORD = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)*|\.[a-z]{2}")
ROUGE_THRESHOLD = 0.4


def answer_region(text: str) -> str:
    """The part of a reply that states its answer (see the module docstring)."""
    tags = _FINAL_TAG.findall(text)
    if tags:
        return str(tags[-1]).strip()
    found = _FINAL_JSON.findall(text)
    if found:
        return str(found[-1]).encode().decode("unicode_escape", errors="replace").strip()
    marks = list(_FINAL_LINE.finditer(text))
    if marks:
        return text[marks[-1].end() :].strip()
    return text.strip()


def words(text: str) -> list[str]:
    """Lowercase word tokens (``.pe`` and ``3.7`` stay whole)."""
    return _WORD.findall(text.lower())


def _number(text: str) -> Fraction | None:
    n = normalize_number(text) if text else ""
    if not n:
        return None
    try:
        return Fraction(n)
    except ValueError:
        return None


def score_numeric_tol(task: Task, text: str) -> Score:
    got = extract_answer(answer_region(text))
    tol = Fraction(str(task.meta.get("tolerance") or "0"))
    gold, value = _number(task.answer), _number(got)
    ok = gold is not None and value is not None and abs(value - gold) <= tol + Fraction(1, 10**9)
    return Score(extracted=got, correct=ok)


def _find_word_seq(hay: list[str], needle: list[str]) -> int:
    """Index of the first occurrence of ``needle`` in ``hay`` as whole words, else -1."""
    k = len(needle)
    for i in range(len(hay) - k + 1):
        if hay[i : i + k] == needle:
            return i
    return -1


def score_choice(task: Task, text: str) -> Score:
    region = words(answer_region(text))
    choices = [str(c) for c in task.meta.get("choices", [])] or [task.answer]
    best: tuple[int, int, str] | None = None
    for choice in choices:
        at = _find_word_seq(region, words(choice))
        # earliest position wins; at one position the longer name wins ("Niger" vs "Niger Delta")
        if at >= 0 and (best is None or (at, -len(choice)) < (best[0], best[1])):
            best = (at, -len(choice), choice)
    got = best[2] if best else ""
    return Score(extracted=got, correct=bool(got) and words(got) == words(task.answer))


def score_span(task: Task, text: str) -> Score:
    region = answer_region(text)
    got, gold = words(region), words(task.answer)
    lines = [ln for ln in region.splitlines() if ln.strip()]
    shown = lines[0].strip() if lines else ""
    ok = bool(gold) and _find_word_seq(got, gold) >= 0 and len(got) <= len(gold) + 3
    return Score(extracted=shown[:200], correct=ok)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len(a)·len(b)))."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (beta = 1) over lowercase word tokens."""
    c, r = words(candidate), words(reference)
    lcs = lcs_length(c, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def score_rouge(task: Task, text: str) -> Score:
    region = answer_region(text)
    lines = [ln for ln in region.splitlines() if ln.strip()]
    summary = lines[0].strip() if lines else ""
    q = rouge_l(summary, task.answer)
    return Score(extracted=summary[:300], correct=q >= ROUGE_THRESHOLD, quality=round(q, 4))


SCORERS = {
    "numeric": score_numeric_tol,
    "choice": score_choice,
    "span": score_span,
    "rouge": score_rouge,
}


def score_task(task: Task, text: str) -> Score:
    """Score with the task's own scorer (``meta["scorer"]``, default ``numeric``)."""
    return SCORERS[str(task.meta.get("scorer", "numeric"))](task, text)
