"""The ``scripted`` engine: deterministic, programmable behaviour with no model.

For protocol research at scale and for tests. Options (``[agents.X.options]``):

- ``table``: ``"gsm8k"`` or a ``.jsonl`` path; questions found in the prompt are answered from
  its gold answers (``{gold}`` in replies).
- ``error_rate``: probability of a wrong answer (gold + a seeded offset).
- ``malformed_rate``: probability of a reply with no answer in it.
- ``conformity``: probability of adopting the most common peer answer when the prompt holds
  peer answers (debate dynamics).
- ``script``: replies by turn (the number of assistant messages already in the conversation);
  the last entry repeats. ``{gold}`` is substituted.
- ``rules``: ``[{match = "regex", reply = "text"}]`` tried in order on the last user message.
- ``reply``: the fallback reply (default ``"The answer is {gold}."``).
- ``latency_s`` (fixed) or ``latency = {dist = "uniform"|"lognormal", ...}``; ``slow``: a factor.
- ``crash_after``: exit the process abruptly on the N-th request (a crash to study).
- ``strategy``: a game baseline for ``[environment]`` runs — ``always_cooperate``,
  ``always_defect``, ``tit_for_tat``, ``grim_trigger`` or ``random`` (cooperates with
  probability ``p``, seeded). It reads the prompt's ``STATE: {...}`` line and replies with the
  game's JSON; prompts without that line fall through to the options above. Also ``talk``
  (``"honest"`` or ``"promise"``), ``sign`` and ``threshold``: see
  ``agentsim.engines.strategies``.

Every draw comes from a ``random.Random`` seeded by (agent seed, prompt, turn), so a request
gets the same completion whatever the order in which requests arrive.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import random
import re
import time
from collections import Counter
from pathlib import Path

from agentsim.chat import ChatRequest, Completion, EngineInfo, Timings, Usage
from agentsim.engines.base import EngineConfig, EngineUnavailable
from agentsim.engines.options import Latency, OptionsError, ScriptedOptions, decode_options

_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_PEER_LINE = re.compile(r"^- [^:]+: (.*)$", re.MULTILINE)


class SimulatedCrash(BaseException):
    """An in-process agent "dies" (the simulated bus's stand-in for a process exit)."""


class _Table:
    """Question -> gold answer, indexed so that finding the questions a prompt contains takes
    a few dict lookups instead of a scan of every question (GSM8K has 1,319 of them: the scan
    cost ~1.5 ms a request, which a thousand agents pay on two cores).

    Every question is at least ``L`` characters long. Each is indexed by its ``k``-grams at
    offsets ``0 .. s-1`` (``s = L - k + 1``), and a prompt is probed every ``s`` characters:
    any occurrence of a question covers one probe whose ``k``-gram was indexed, so no
    occurrence is missed; each hit is then checked in full.
    """

    def __init__(self, gold: dict[str, str]) -> None:
        self.gold = gold
        self.order = {q: i for i, q in enumerate(gold)}
        shortest = min((len(q) for q in gold), default=1)
        self.k = max(1, min(16, shortest))
        self.stride = max(1, min(16, shortest - self.k + 1))
        self.grams: dict[str, list[tuple[str, int]]] = {}
        for q in gold:
            for off in range(min(self.stride, len(q) - self.k + 1)):
                self.grams.setdefault(q[off : off + self.k], []).append((q, off))

    def __contains__(self, key: str) -> bool:
        return key in self.gold

    def __getitem__(self, key: str) -> str:
        return self.gold[key]

    def first_in(self, content: str) -> tuple[str, str] | None:
        """The earliest question (in table order) that occurs in ``content``."""
        k, get, order = self.k, self.grams.get, self.order
        best = "" if "" in self.gold else None  # the empty question occurs everywhere
        for p in range(0, len(content) - k + 1, self.stride):
            hits = get(content[p : p + k])
            if hits is None:
                continue
            for q, off in hits:
                if (best is None or order[q] < order[best]) and content.startswith(q, p - off):
                    best = q
        return (best, self.gold[best]) if best is not None else None


@functools.cache
def _table(spec: str, cwd: str, _stamp: int) -> _Table:
    """Read-only once built, so one copy serves every engine of a process (and every agent
    forked after ``preload``)."""
    from agentsim.tasks import load_suite

    try:
        tasks, _ = load_suite(spec, base_dir=Path(cwd))
    except (OSError, ValueError) as e:
        raise EngineUnavailable(f"scripted table {spec!r} cannot be loaded: {e}") from e
    if not tasks:
        raise EngineUnavailable(f"scripted table {spec!r} cannot be loaded: it holds no tasks")
    return _Table({t.question.strip(): t.answer for t in tasks})


def load_table(spec: str) -> _Table:
    """The gold table ``spec`` names (a suite name or a ``.jsonl`` path from the working
    directory), read once per process; raises ``EngineUnavailable`` when it cannot be
    loaded."""
    cwd = os.getcwd()
    try:  # a table file edited between runs of one process is read again
        stamp = (Path(cwd) / spec).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _table(spec, cwd, stamp)


def preload(config: EngineConfig) -> None:
    """Load the answer table before agents fork (see ``agentsim.engines.preload_engine``)."""
    if "table" in config.options:
        with contextlib.suppress(EngineUnavailable):  # the agent reports it when it loads
            load_table(str(config.options["table"]))


class ScriptedEngine:
    """Answers by rule, script or gold table; see the module docstring for options."""

    def __init__(self, config: EngineConfig) -> None:
        t0 = time.perf_counter()
        self.config = config
        try:
            o = decode_options(config.options, ScriptedOptions)
        except OptionsError as e:
            raise EngineUnavailable(f"scripted: {e}") from None
        self.options = o
        self.table = load_table(o.table) if o.table else _Table({})
        self.error_rate = o.error_rate
        self.malformed_rate = o.malformed_rate
        self.conformity = o.conformity
        self.script = list(o.script)
        self.rules = [(re.compile(r.match), r.reply) for r in o.rules]
        self.reply = o.reply
        self.latency: Latency | float = o.latency if o.latency is not None else o.latency_s
        self.slow = o.slow
        self.crash_after = o.crash_after
        self.strategy = o.strategy
        self.calls = 0
        #: answers without sleeping: an agent may call it on its event loop
        self.nonblocking = not self.latency and not self.crash_after
        self.virtual = False  # in simulation the agent sleeps ``last_latency`` on trio's clock
        self.last_latency = 0.0
        self._load_s = time.perf_counter() - t0

    def info(self) -> EngineInfo:
        # No model is loaded: name one only when the scenario chose a non-default label.
        label = self.config.model if self.config.model != EngineConfig().model else "scripted"
        return EngineInfo(engine="scripted", model=label or "scripted", load_s=self._load_s)

    def close(self) -> None:
        pass

    def _rng(self, request: ChatRequest, turn: int) -> random.Random:
        text = "\x1f".join(m.content or "" for m in request.messages)
        h = hashlib.blake2b(f"{self.config.seed}\x1e{turn}\x1e{text}".encode(), digest_size=8)
        return random.Random(int.from_bytes(h.digest(), "little"))

    def _gold(self, request: ChatRequest) -> str:
        for m in request.messages:
            if m.role == "user" and m.content:
                found = self._questions(m.content)
                if found:
                    return found[0][1]
        return ""

    def _questions(self, content: str) -> list[tuple[str, str]]:
        key = content.strip()
        if key in self.table:
            return [(key, self.table[key])]
        found = self.table.first_in(content)
        return [found] if found is not None else []

    def _sleep(self, rng: random.Random) -> None:
        lat = self.latency
        if isinstance(lat, float):
            seconds = lat
        elif lat.dist == "uniform":
            seconds = rng.uniform(lat.low, lat.high)
        elif lat.dist == "lognormal":
            seconds = rng.lognormvariate(lat.mu, lat.sigma)
        else:
            seconds = lat.value
        self.last_latency = seconds * self.slow
        if seconds > 0 and not self.virtual:
            time.sleep(self.last_latency)

    def chat(self, request: ChatRequest) -> Completion:
        self.calls += 1
        if self.crash_after and self.calls >= self.crash_after:
            if self.virtual:
                raise SimulatedCrash(f"{self.config.model} crashed on request {self.calls}")
            os._exit(17)
        t0 = time.perf_counter()
        turn = sum(1 for m in request.messages if m.role == "assistant")
        rng = self._rng(request, turn)
        gold = self._gold(request)
        text = self._compose(request, rng, turn, gold)
        self._sleep(rng)
        text = text[: max(1, request.sampling.max_tokens * 8)]
        prompt_tokens = sum(len((m.content or "").split()) for m in request.messages)
        completion_tokens = max(1, len(text.split()))
        elapsed = time.perf_counter() - t0
        return Completion(
            text=text,
            finish_reason="stop",
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            timings=Timings(prefill_s=0.0, decode_s=elapsed),
            seed=request.sampling.seed,
        )

    def _compose(self, request: ChatRequest, rng: random.Random, turn: int, gold: str) -> str:
        last_user = next(
            (m.content or "" for m in reversed(request.messages) if m.role == "user"), ""
        )
        if self.strategy:  # a game baseline: the hook into agentsim.engines.strategies
            from agentsim.engines.strategies import strategy_reply

            texts = [m.content or "" for m in request.messages]
            played = strategy_reply(self.strategy, texts, rng, self.config.options)
            if played is not None:
                return played
        if self.script:
            return self.script[min(turn, len(self.script) - 1)].replace("{gold}", gold)
        for pattern, reply in self.rules:
            if pattern.search(last_user):
                return reply.replace("{gold}", gold)
        if rng.random() < self.malformed_rate:
            return rng.choice(["I am not sure.", "Let me think about it...", '{"answer": '])
        peers = _PEER_LINE.findall(last_user)
        if peers and rng.random() < self.conformity:
            numbers = [m[-1] for m in (_NUM.findall(p) for p in peers) if m]
            if numbers:
                majority = Counter(numbers).most_common(1)[0][0]
                return f"After reading the others, the answer is {majority}."
        answer = gold
        if gold and rng.random() < self.error_rate:
            answer = _wrong(gold, rng)
        return self.reply.replace("{gold}", answer or "unknown")


def _wrong(gold: str, rng: random.Random) -> str:
    try:
        value = float(gold.replace(",", ""))
    except ValueError:
        return gold + "?"
    offset = rng.choice([-3, -2, -1, 1, 2, 3, 10])
    wrong = value + offset
    return str(int(wrong)) if wrong.is_integer() else str(wrong)
