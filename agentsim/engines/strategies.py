"""Scripted game strategies: baselines that read the ``STATE:`` line of a game prompt.

The scripted engine calls ``strategy_reply`` when an agent has ``strategy`` in its options
(see ``agentsim.engines.scripted``); the game environments (``agentsim.environments``) write
the ``STATE:`` line it reads. It lives with the engines, below the environments, and uses
only the standard library. Strategies:

- ``always_cooperate`` / ``always_defect``.
- ``tit_for_tat``: copy the partner's last action — what the partner played last round when
  ``partner`` is observed, else what it played against me when we last met (``own``), else its
  last entry in the public record; cooperate first. In a public-goods game: contribute the
  mean of the group's last contributions.
- ``grim_trigger``: cooperate until any partner failed to cooperate with me (needs ``own``).
- ``random``: cooperate with probability ``p`` (default 0.5), from the engine's seeded RNG.

Options besides ``p``: ``talk = "promise"`` always announces cooperation in cheap talk (the
default, ``"honest"``, announces the action it will play); ``sign = false`` refuses contracts;
``threshold`` (public goods) is the contribution below which ``grim_trigger`` triggers
(default: the endowment).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

STRATEGIES = ("always_cooperate", "always_defect", "tit_for_tat", "grim_trigger", "random")
STATE_PREFIX = "STATE: "


def find_state(texts: Sequence[str]) -> dict[str, Any] | None:
    """The last ``STATE: {...}`` line in the messages, decoded (None when there is none)."""
    for text in reversed(texts):
        for line in reversed(text.splitlines()):
            if line.startswith(STATE_PREFIX):
                try:
                    value = json.loads(line[len(STATE_PREFIX) :])
                except ValueError:
                    return None
                return value if isinstance(value, dict) else None
    return None


def strategy_reply(
    strategy: str, texts: Sequence[str], rng: random.Random, options: Mapping[str, Any]
) -> str | None:
    """The JSON reply ``strategy`` gives to a game prompt, or None for a prompt without state."""
    state = find_state(texts)
    if state is None:
        return None
    phase = state.get("phase")
    coop = state["cooperate"]
    pg = state.get("env") == "public_goods"
    if phase == "mediate":
        proposal = state["defect"] if strategy == "always_defect" else coop
        return json.dumps({"proposals": dict.fromkeys(state.get("players", []), proposal)})
    if phase == "contract":
        return json.dumps({"sign": bool(options.get("sign", True))})
    move = choose(strategy, state, rng, options)
    if phase == "talk":
        intent = coop if options.get("talk", "honest") == "promise" else move
        key = "pledge" if pg else "intend"
        return json.dumps({"message": f"I will play {intent}.", key: intent})
    return json.dumps({"contribution": move} if pg else {"action": move})


def choose(
    strategy: str, state: Mapping[str, Any], rng: random.Random, options: Mapping[str, Any]
) -> Any:
    """The move ``strategy`` makes in ``state`` (an action name or a contribution)."""
    coop, defect = state["cooperate"], state["defect"]
    if strategy == "always_cooperate":
        return coop
    if strategy == "always_defect":
        return defect
    if strategy == "random":
        return coop if rng.random() < float(options.get("p", 0.5)) else defect
    if strategy == "grim_trigger":
        return _grim(state, options)
    if strategy == "tit_for_tat":
        return _tit_for_tat(state)
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def _last_moves(state: Mapping[str, Any]) -> list[Any]:
    """What my current partners did last: observed partners, own history, public record."""
    partners = list(state.get("partners", []))
    seen = state.get("partner_history") or {}
    moves = [seen[p][-1] for p in partners if seen.get(p)]
    if moves:
        return moves
    history = state.get("history") or []
    if state.get("env") == "public_goods":
        if history:
            return list(history[-1]["theirs"].values())
    else:
        for entry in reversed(history):
            met = [entry["theirs"][p] for p in partners if p in entry["theirs"]]
            if met:
                return met
    record = state.get("record") or {}
    return [record[p][-1] for p in partners if record.get(p)]


def _tit_for_tat(state: Mapping[str, Any]) -> Any:
    moves = _last_moves(state)
    if not moves:
        return state["cooperate"]
    if state.get("env") == "public_goods":
        mean = sum(float(m) for m in moves) / len(moves)
        return round(mean, 6)
    return moves[0]


def _grim(state: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    coop = state["cooperate"]
    threshold = (
        float(options.get("threshold", coop)) if state.get("env") == "public_goods" else None
    )
    for entry in state.get("history") or []:
        for move in entry["theirs"].values():
            betrayed = float(move) < threshold if threshold is not None else move != coop
            if betrayed:
                return state["defect"]
    return coop
