"""Game rules with no I/O: matching schedules, action parsing, payoffs, cooperation, optimum.

``MatrixRules`` and ``PublicGoodsRules`` share one shape so the environment protocol drives
both. A move is an action name (matrix game) or a contribution (public goods).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agentsim.environments.spec import EnvironmentSpec, MatrixGameSpec, PublicGoodsSpec

Move = str | float


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (models wrap JSON in prose or code fences)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


_FIELD = re.compile(r'"(\w+)"\s*:\s*(?:"([^"]*)"|(-?\d+(?:\.\d+)?))')


def loose_fields(text: str) -> dict[str, Any]:
    """``"key": value`` pairs (strings and numbers) of a possibly truncated JSON object.

    Used for cheap talk only, where a small model's reply is often cut at ``max_tokens``;
    actions must be complete JSON.
    """
    found = first_json_object(text)
    if found is not None:
        return found
    out: dict[str, Any] = {}
    for m in _FIELD.finditer(text):
        key, string, number = m.groups()
        out.setdefault(key, string if string is not None else float(number))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def schedule(
    players: Sequence[str],
    *,
    size: int,
    matching: str,
    groups: Sequence[Sequence[str]],
    rounds: int,
    seed: int,
) -> list[list[list[str]]]:
    """Groups per round. ``size`` 0 puts everyone in one group; a left-over player sits out."""
    if matching == "fixed":
        fixed = [list(g) for g in groups]
        return [fixed for _ in range(rounds)]
    out: list[list[list[str]]] = []
    for r in range(rounds):
        if matching == "random":
            order: list[str | None] = list(players)
            random.Random(f"agentsim-matching:{seed}:{r}").shuffle(order)
        else:
            order = _circle(list(players), r)
        out.append(_chunk(order, size or len(players)))
    return out


def _circle(players: list[str], r: int) -> list[str | None]:
    """The circle method: round ``r`` of a round robin, flattened pair by pair."""
    slots: list[str | None] = [*players, None] if len(players) % 2 else list(players)
    n = len(slots)
    rest = slots[1:]
    k = r % (n - 1)
    rest = rest[-k:] + rest[:-k] if k else rest
    ring = [slots[0], *rest]
    flat: list[str | None] = []
    for i in range(n // 2):
        flat += [ring[i], ring[n - 1 - i]]
    return flat


def _chunk(order: list[str | None], size: int) -> list[list[str]]:
    if size == 2:  # keep round-robin pairs intact around the bye
        pairs = [order[i : i + 2] for i in range(0, len(order), 2)]
        return [
            [p for p in pair if p is not None]
            for pair in pairs
            if None not in pair and len(pair) == 2
        ]
    present = [p for p in order if p is not None]
    chunks = [present[i : i + size] for i in range(0, len(present), size)]
    return [c for c in chunks if len(c) >= 2]


class MatrixRules:
    """A two-player game; the first member of a pair is the row player."""

    kind = "matrix_game"

    def __init__(self, spec: MatrixGameSpec) -> None:
        self.spec = spec
        self.actions = spec.actions
        self.cooperate = spec.cooperative_action
        self.default: Move = spec.fallback_action
        self.group_size = 2

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"action": {"type": "string", "enum": self.actions}},
            "required": ["action"],
            "additionalProperties": False,
        }

    def talk_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {  # the intent first, so a reply cut at max_tokens still holds it
                "intend": {"type": "string", "enum": self.actions},
                "message": {"type": "string", "maxLength": 120},
            },
            "required": ["intend", "message"],
            "additionalProperties": False,
        }

    def parse(self, obj: dict[str, Any] | None, key: str = "action") -> Move | None:
        value = obj.get(key) if obj else None
        if not isinstance(value, str):
            return None
        if value in self.actions:
            return value
        folded = [a for a in self.actions if a.lower() == value.strip().lower()]
        return folded[0] if len(folded) == 1 else None

    def parse_intent(self, obj: dict[str, Any] | None) -> Move | None:
        return self.parse(obj, "intend")

    def payoffs(self, group: Sequence[str], moves: Mapping[str, Move]) -> dict[str, float]:
        row, col = group
        a, b = self.spec.payoff(str(moves[row]), str(moves[col]))
        return {row: a, col: b}

    def optimum(self, group: Sequence[str]) -> float:
        return max(sum(self.spec.payoff(a, b)) for a in self.actions for b in self.actions)

    def cooperation(self, move: Move) -> float:
        return 1.0 if move == self.cooperate else 0.0

    def kept(self, move: Move, commitment: Move) -> bool:
        """Whether ``move`` honours a promise of ``commitment`` (a contract or cheap talk)."""
        return commitment != self.cooperate or move == self.cooperate

    def contract_commitment(self) -> Move:
        return self.cooperate

    def describe(self, me: str, group: Sequence[str]) -> str:
        """The payoff table from ``me``'s side, one line per joint action."""
        partner = next(p for p in group if p != me)
        lines = []
        for mine in self.actions:
            for theirs in self.actions:
                if group[0] == me:
                    a, b = self.spec.payoff(mine, theirs)
                else:
                    b, a = self.spec.payoff(theirs, mine)
                lines.append(
                    f"- you {mine}, {partner} {theirs}: you get {a:g}, {partner} gets {b:g}"
                )
        return "\n".join(lines)

    def reply_hint(self) -> str:
        options = " or ".join(json.dumps({"action": a}) for a in self.actions)
        return f"Reply with JSON only: {options}."


class PublicGoodsRules:
    """Each member contributes 0..endowment; the pot times ``multiplier`` is shared evenly."""

    kind = "public_goods"

    def __init__(self, spec: PublicGoodsSpec) -> None:
        self.spec = spec
        self.endowment = spec.endowment
        self.default: Move = spec.default_contribution
        self.cooperate: Move = spec.endowment
        self.group_size = spec.group_size

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"contribution": self._amount()},
            "required": ["contribution"],
            "additionalProperties": False,
        }

    def _amount(self) -> dict[str, Any]:
        # an integer endowment asks for whole tokens: small models otherwise emit long decimals
        kind = "integer" if float(self.endowment).is_integer() else "number"
        return {"type": kind, "minimum": 0, "maximum": self.endowment}

    def talk_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "pledge": self._amount(),
                "message": {"type": "string", "maxLength": 120},
            },
            "required": ["pledge", "message"],
            "additionalProperties": False,
        }

    def parse(self, obj: dict[str, Any] | None, key: str = "contribution") -> Move | None:
        value = _number(obj.get(key)) if obj else None
        if value is None or not 0 <= value <= self.endowment:
            return None
        return value

    def parse_intent(self, obj: dict[str, Any] | None) -> Move | None:
        return self.parse(obj, "pledge")

    def payoffs(self, group: Sequence[str], moves: Mapping[str, Move]) -> dict[str, float]:
        pot = sum(float(moves[p]) for p in group) * self.spec.multiplier
        share = pot / len(group)
        return {p: self.endowment - float(moves[p]) + share for p in group}

    def optimum(self, group: Sequence[str]) -> float:
        return len(group) * self.endowment * max(1.0, self.spec.multiplier)

    def cooperation(self, move: Move) -> float:
        return float(move) / self.endowment

    def kept(self, move: Move, commitment: Move) -> bool:
        return float(move) >= float(commitment)

    def contract_commitment(self) -> Move:
        c = self.spec.contracts
        return c.commitment if c is not None and c.commitment is not None else self.endowment

    def describe(self, me: str, group: Sequence[str]) -> str:
        n = len(group)
        return (
            f"- you and {n - 1} others each hold {self.endowment:g} tokens and choose a contribution "
            f"from 0 to {self.endowment:g}\n- the pot is multiplied by {self.spec.multiplier:g} and "
            f"shared evenly by all {n}\n- your payoff = {self.endowment:g} - your contribution "
            f"+ {self.spec.multiplier:g} * total / {n}"
        )

    def reply_hint(self) -> str:
        return f'Reply with JSON only: {{"contribution": N}} with N from 0 to {self.endowment:g}.'


Rules = MatrixRules | PublicGoodsRules


def rules_for(spec: EnvironmentSpec) -> Rules:
    if isinstance(spec, MatrixGameSpec):
        return MatrixRules(spec)
    return PublicGoodsRules(spec)
