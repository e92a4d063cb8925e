"""Questions generated from the World Factbook behind the ``search`` tool (public domain).

Two task types, both answered by computing on figures parsed from the shipped corpus
(``agentsim/tools/data/factbook.jsonl.gz``), never typed by hand:

- ``factbook_qa``: facts a small model rarely holds — capital, internet country code, total
  area, population — one search away;
- ``financial_qa``: numeric questions on the Economy fields ("Real GDP growth rate 2024: 3.3%
  (2024 est.); ... 2023: -0.4% ...", inflation, unemployment, exports, imports): a look-up, a
  difference, a ratio, a growth percentage or a comparison of two countries — the seed
  study's knowledge agent (search + calculator) is what they need.

Countries are split by a stable hash: four in five for the test split, one in five for the
held-apart ``examples`` split, so a worked example never shows a test country.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import random
import re
from dataclasses import dataclass
from fractions import Fraction

import msgspec

from agentsim.tasks.base import Task
from agentsim.tools.search import CORPUS_PATH

_YEAR_VALUE = re.compile(r"(\d{4}):\s*(-?)\$?(-?[\d,]*\.?\d+)\s*(%|trillion|billion|million)?")
_SCALE = {"trillion": 10**12, "billion": 10**9, "million": 10**6}
SERIES = {
    "growth": ("Economy - Real GDP growth rate", "real GDP growth rate", "%"),
    "inflation": ("Economy - Inflation rate (consumer prices)", "inflation rate", "%"),
    "unemployment": ("Economy - Unemployment rate", "unemployment rate", "%"),
    "exports": ("Economy - Exports", "exports", "$"),
    "imports": ("Economy - Imports", "imports", "$"),
}


class _Doc(msgspec.Struct, frozen=True):
    title: str
    text: str


@dataclass(frozen=True)
class Country:
    """What the generators use of one Factbook entry (``series``: key → {year: value})."""

    name: str
    capital: str
    tld: str
    area_sq_km: int
    population: int
    series: dict[str, dict[int, Fraction]]


def parse_series(text: str) -> dict[int, Fraction]:
    """``"Exports 2024: $83.325 billion (2024 est.); Exports 2023: ..."`` → {2024: 83325000000, ...}.

    Percentages stay percentages; dollar amounts become dollars. Only the ``YEAR: value`` pairs
    count (the ``(2024 est.)`` remarks are not values).
    """
    out: dict[int, Fraction] = {}
    for m in _YEAR_VALUE.finditer(text):
        year, sign, number, unit = m.groups()
        value = Fraction(number.replace(",", ""))
        if sign:
            value = -value
        if unit in _SCALE:
            value *= _SCALE[unit]
        out.setdefault(int(year), value)
    return out


def _first_int(text: str, prefix: str) -> int:
    m = re.search(re.escape(prefix) + r"\s*:?\s*([\d,]+)", text)
    return int(m.group(1).replace(",", "")) if m else 0


@functools.cache
def countries() -> tuple[Country, ...]:
    """Every Factbook entry with a capital, an internet code, an area and a population."""
    fields: dict[str, dict[str, str]] = {}
    decoder = msgspec.json.Decoder(_Doc)
    with gzip.open(CORPUS_PATH, "rb") as fh:
        for line in fh:
            doc = decoder.decode(line)
            name, _, field = doc.title.partition(" - ")
            fields.setdefault(name, {})[field] = doc.text
    out: list[Country] = []
    for name, f in sorted(fields.items()):
        cap = re.match(r"name:\s*([^;(]+?)\s*[;(]", f.get("Government - Capital", ""))
        tld = f.get("Communications - Internet country code", "").strip()
        area = _first_int(f.get("Geography - Area", ""), "total")
        pop = _first_int(f.get("People and Society - Population", ""), "total")
        if not (cap and re.fullmatch(r"\.[a-z]{2}", tld) and area and pop):
            continue
        series = {key: parse_series(f.get(title, "")) for key, (title, _, _) in SERIES.items()}
        out.append(Country(name, cap.group(1).strip(), tld, area, pop, series))
    return tuple(out)


def split_of(name: str) -> str:
    """``"examples"`` for one country in five (stable across runs and machines), else ``"test"``."""
    digest = hashlib.sha256(name.encode()).digest()
    return "examples" if digest[0] % 5 == 0 else "test"


def _fmt(x: Fraction, places: int) -> str:
    """Round half away from zero to ``places`` decimals, without a trailing ``.0``."""
    q = Fraction(10) ** places
    n = abs(x) * q
    r = int(n) + (1 if n - int(n) >= Fraction(1, 2) else 0)
    value = Fraction(r, q.numerator) * (1 if x >= 0 else -1)
    text = f"{float(value):.{places}f}" if places else str(int(value))
    return text.rstrip("0").rstrip(".") if "." in text else text


def _money(x: Fraction) -> str:
    return f"${_fmt(x / 10**9, 3)} billion"


def _task(kind: str, i: int, split: str, question: str, answer: str, **meta: object) -> Task:
    category = "factbook_qa" if kind.startswith("fact") else "financial_qa"
    return Task(
        id=f"{category}-{split}-{i}",
        question=question,
        answer=answer,
        category=category,
        meta={"instruction": meta.pop("instruction", ""), **meta},
    )


_SHORT = "Reply with 'Final Answer: ' followed by the answer only."


def factbook_tasks(n: int, *, split: str = "test", seed: int = 17) -> list[Task]:
    """``n`` fact questions (capital, internet code, area, population) on ``split`` countries."""
    rng = random.Random(f"factbook_qa/{split}/{seed}")
    pool = [c for c in countries() if split_of(c.name) == split]
    out: list[Task] = []
    kinds = ["capital", "tld", "area", "population"]
    for i in range(n):
        c = rng.choice(pool)
        kind = kinds[i % len(kinds)]
        if kind == "capital":
            q, a, query = (
                f"What is the capital of {c.name}?",
                c.capital,
                f"{c.name} government capital",
            )
            scorer = "span"
        elif kind == "tld":
            q = f"What is the internet country code (top-level domain) of {c.name}?"
            a, query, scorer = c.tld, f"{c.name} internet country code", "span"
        elif kind == "area":
            q = f"What is the total area of {c.name} in square kilometres, according to the World Factbook?"
            a, query, scorer = str(c.area_sq_km), f"{c.name} area total sq km", "numeric"
        else:
            q = f"What is the total population of {c.name}, according to the World Factbook?"
            a, query, scorer = str(c.population), f"{c.name} population total", "numeric"
        out.append(
            _task(
                "fact",
                i,
                split,
                q,
                a,
                instruction=_SHORT,
                scorer=scorer,
                country=c.name,
                steps=[{"tool": "search", "arguments": {"query": query, "k": 2}}],
            )
        )
    return out


def _pick(rng: random.Random, pool: list[Country], key: str, years: tuple[int, ...]) -> Country:
    have = [c for c in pool if all(y in c.series[key] for y in years)]
    return rng.choice(have)


def financial_tasks(n: int, *, split: str = "test", seed: int = 17) -> list[Task]:
    """``n`` numeric questions on Factbook Economy series, answers computed from the figures."""
    rng = random.Random(f"financial_qa/{split}/{seed}")
    pool = [c for c in countries() if split_of(c.name) == split]
    out: list[Task] = []
    choices: list[str] = []
    shapes = ["lookup", "difference", "ratio", "growth", "compare"]
    for i in range(n):
        shape = shapes[i % len(shapes)]
        if shape == "lookup":
            key = rng.choice(["growth", "inflation", "unemployment"])
            c = _pick(rng, pool, key, (2023,))
            label = SERIES[key][1]
            value = c.series[key][2023]
            q = f"According to the World Factbook, what was the {label} of {c.name} in 2023, in percent?"
            answer, tol, query = _fmt(value, 1), "0.05", f"{c.name} {label}"
            steps = [{"tool": "search", "arguments": {"query": query, "k": 2}}]
        elif shape == "difference":
            key = rng.choice(["growth", "inflation", "unemployment"])
            c = _pick(rng, pool, key, (2023, 2024))
            label = SERIES[key][1]
            a, b = c.series[key][2024], c.series[key][2023]
            q = (
                f"According to the World Factbook, by how many percentage points did the {label} of "
                f"{c.name} change from 2023 to 2024? Give the 2024 value minus the 2023 value."
            )
            answer, tol, query = _fmt(a - b, 1), "0.05", f"{c.name} {label}"
            steps = [
                {"tool": "search", "arguments": {"query": query, "k": 2}},
                {
                    "tool": "calculator",
                    "arguments": {"expression": f"{_fmt(a, 3)} - ({_fmt(b, 3)})"},
                },
            ]
        elif shape == "ratio":
            c = _pick(rng, [x for x in pool if x.series["imports"].get(2024)], "exports", (2024,))
            ex, im = c.series["exports"][2024], c.series["imports"][2024]
            q = (
                f"According to the World Factbook, what was the ratio of the exports of {c.name} to "
                f"its imports in 2024? Round to two decimal places."
            )
            answer, tol, query = _fmt(ex / im, 2), "0.005", f"{c.name} exports imports"
            steps = [
                {"tool": "search", "arguments": {"query": f"{c.name} exports", "k": 2}},
                {"tool": "search", "arguments": {"query": f"{c.name} imports", "k": 2}},
                {
                    "tool": "calculator",
                    "arguments": {"expression": f"{_fmt(ex / 10**9, 3)} / {_fmt(im / 10**9, 3)}"},
                },
            ]
        elif shape == "growth":
            c = _pick(rng, pool, "exports", (2023, 2024))
            a, b = c.series["exports"][2024], c.series["exports"][2023]
            q = (
                f"According to the World Factbook, by what percent did the exports of {c.name} "
                f"change from 2023 to 2024? Round to one decimal place."
            )
            answer, tol, query = _fmt((a / b - 1) * 100, 1), "0.05", f"{c.name} exports"
            steps = [
                {"tool": "search", "arguments": {"query": query, "k": 2}},
                {
                    "tool": "calculator",
                    "arguments": {
                        "expression": f"({_fmt(a / 10**9, 3)} / {_fmt(b / 10**9, 3)} - 1) * 100"
                    },
                },
            ]
        else:
            key = rng.choice(["growth", "inflation", "unemployment"])
            c = _pick(rng, pool, key, (2024,))
            others = [
                x
                for x in pool
                if 2024 in x.series[key] and x.series[key][2024] != c.series[key][2024]
            ]
            d = rng.choice(others)
            label = SERIES[key][1]
            higher = c if c.series[key][2024] > d.series[key][2024] else d
            q = (
                f"According to the World Factbook, which country had the higher {label} in 2024: "
                f"{c.name} or {d.name}?"
            )
            answer, tol, choices = higher.name, "", [c.name, d.name]
            steps = [
                {"tool": "search", "arguments": {"query": f"{c.name} {label}", "k": 2}},
                {"tool": "search", "arguments": {"query": f"{d.name} {label}", "k": 2}},
            ]
        out.append(
            _task(
                "fin",
                i,
                split,
                q,
                answer,
                instruction=_SHORT,
                scorer="choice" if shape == "compare" else "numeric",
                tolerance=tol,
                shape=shape,
                steps=steps,
                **({"choices": choices} if shape == "compare" else {}),
            )
        )
    return out


__all__ = [
    "SERIES",
    "Country",
    "countries",
    "factbook_tasks",
    "financial_tasks",
    "parse_series",
    "split_of",
]
