"""What a player is shown: the ``STATE`` dict scripted strategies read, and the prose intro.

Observation options decide what goes in: ``own`` (my last ``memory`` rounds), ``partner``
(my partners' last moves against anyone), ``reputation`` (everyone's cooperation rate so
far); the ``reputation`` mechanism adds the public record of everyone's last ``window`` moves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from agentsim.environments.games import MatrixRules, Move, PublicGoodsRules, Rules
from agentsim.environments.spec import EnvironmentSpec


class Observer:
    """Builds observations from the settled rounds (``past``, shared with the environment)."""

    def __init__(
        self,
        env: EnvironmentSpec,
        rules: Rules,
        players: list[str],
        schedule: list[list[list[str]]],
        past: list[dict[str, Any]],
    ) -> None:
        self.env = env
        self.rules = rules
        self.players = players
        self.schedule = schedule
        self.past = past

    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self.env)
        data["players"] = self.players
        data["cooperate"] = self.rules.cooperate
        data["default"] = self.rules.default
        return data

    def defect(self) -> Move:
        rules = self.rules
        if isinstance(rules, PublicGoodsRules):
            return 0.0
        if rules.default != rules.cooperate:
            return rules.default
        return next(a for a in reversed(rules.actions) if a != rules.cooperate)

    def state(
        self,
        me: str,
        phase: str,
        r: int,
        mates: Sequence[str],
        advice: Mapping[str, Move] | None = None,
    ) -> dict[str, Any]:
        env = self.env
        state: dict[str, Any] = {
            "env": self.rules.kind,
            "phase": phase,
            "round": r,
            "rounds": env.rounds,
            "me": me,
            "partners": list(mates),
            "cooperate": self.rules.cooperate,
            "defect": self.defect(),
        }
        if isinstance(self.rules, MatrixRules):
            state["actions"] = self.rules.actions
        else:
            state["endowment"] = self.rules.endowment
        past = self.past
        mem = env.memory
        if "own" in env.observation and phase != "mediate":
            mine = [rec for rec in past if me in rec["moves"]][-mem:]
            state["history"] = [
                {
                    "round": rec["round"],
                    "mine": rec["moves"][me],
                    "theirs": {
                        q: rec["moves"][q] for g in rec["groups"] if me in g for q in g if q != me
                    },
                    "payoff": rec["payoffs"][me],
                }
                for rec in mine
            ]
        if "partner" in env.observation:
            state["partner_history"] = {
                q: [rec["moves"][q] for rec in past if q in rec["moves"]][-mem:] for q in mates
            }
        if "reputation" in env.observation:
            state["reputation"] = self.reputation()
        if env.reputation is not None:
            w = env.reputation.window
            state["record"] = {
                q: [rec["moves"][q] for rec in past if q in rec["moves"]][-w:] for q in self.players
            }
        if advice and me in advice:
            state["recommendation"] = advice[me]
        return state

    def reputation(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for q in self.players:
            seen = [rec["cooperation_by_agent"][q] for rec in self.past if q in rec["moves"]]
            if seen:
                out[q] = round(sum(seen) / len(seen), 3)
        return out

    def intro(
        self, me: str, r: int, mates: Sequence[str], advice: Mapping[str, Move] | None = None
    ) -> str:
        """The prose half of a prompt (the ``STATE`` line carries the same facts as JSON)."""
        group = next((g for g in self.schedule[r - 1] if me in g), [me, *mates])
        lines = [
            f"You are {me}, playing round {r} of {self.env.rounds} of a repeated game with {', '.join(mates)}.",
            "Payoffs this round:",
            self.rules.describe(me, group),
        ]
        if self.past and "own" in self.env.observation:
            mine = [rec for rec in self.past if me in rec["moves"]][-self.env.memory :]
            lines.append(
                "Your recent rounds: "
                + "; ".join(
                    f"round {rec['round']}: you {rec['moves'][me]}, payoff {rec['payoffs'][me]:g}"
                    for rec in mine
                )
            )
        if self.env.reputation is not None and self.past:
            w = self.env.reputation.window
            record = {
                q: [rec["moves"][q] for rec in self.past if q in rec["moves"]][-w:] for q in mates
            }
            lines.append("Public record of your partners: " + json.dumps(record))
        if advice and me in advice:
            lines.append(f"The mediator proposes that you play {advice[me]}.")
        if self.env.instructions:
            lines.append(self.env.instructions)
        return "\n".join(lines)


def talk_example(rules: Rules) -> dict[str, Any]:
    if rules.kind == "public_goods":
        full = float(rules.cooperate)
        return {"pledge": int(full) if full.is_integer() else full, "message": "..."}
    return {"intend": rules.cooperate, "message": "..."}
