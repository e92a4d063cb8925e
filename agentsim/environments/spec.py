"""The ``[environment]`` table: msgspec Structs, cross-field checks, one-line errors.

A scenario runs either a task suite or an environment. Two kinds exist, told apart by
``kind``::

    [environment]
    kind = "matrix_game"            # any N-action two-player table
    rounds = 10
    matching = "round_robin"        # round_robin | random | fixed (then groups = [["a", "b"]])
    observation = ["own", "partner"]  # also "reputation" (everyone's cooperation rate)
    cooperate = "C"                 # the cooperative action (default: the first one declared)
    default_action = "D"            # played after an invalid action (default: the last one)
    [environment.payoffs]           # row action -> column action -> [row, column] payoff
    C = { C = [3, 3], D = [0, 5] }
    D = { C = [5, 0], D = [1, 1] }
    [environment.communication]
    kind = "cheap_talk"             # or "none"
    exchanges = 1
    [environment.reputation]        # public record of everyone's last `window` actions
    window = 5
    [environment.mediator]          # an agent that proposes actions before players act
    agent = "mo"
    [environment.contracts]         # partners may sign: a defector pays `transfer` to cooperators
    transfer = 4

``kind = "public_goods"`` takes ``endowment``, ``multiplier``, ``group_size`` (0: everyone in
one group) and ``default_contribution`` instead of ``payoffs``; ``contracts.commitment`` is the
contribution a signer promises (default: the endowment).

``parse_environment`` raises ``EnvironmentConfigError("<dotted.field> <rule>")``; the scenario
loader adds the value and ``file:line``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]

Matching = Literal["round_robin", "random", "fixed"]
Observation = Literal["own", "partner", "reputation"]
KINDS = ("matrix_game", "public_goods")
_CHOICES = {
    "kind": KINDS,
    "matching": ("round_robin", "random", "fixed"),
    "observation": ("own", "partner", "reputation"),
    "communication.kind": ("none", "cheap_talk"),
}


class EnvironmentConfigError(ValueError):
    """A mistake in ``[environment]``; ``str()`` reads ``FIELD RULE``."""


class _T(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class CommunicationSpec(_T, frozen=True):
    """Cheap talk: ``exchanges`` messages between partners (real Peer messages) before acting."""

    kind: Literal["none", "cheap_talk"] = "none"
    exchanges: PositiveInt = 1


class ReputationSpec(_T, frozen=True):
    """A public record of every player's last ``window`` actions, shown to all."""

    window: PositiveInt = 5


class MediatorSpec(_T, frozen=True):
    """An agent (not a player) that proposes an action for each player before they act."""

    agent: str


class ContractSpec(_T, frozen=True):
    """An offered contract: a signer who does not cooperate pays ``transfer`` to the
    cooperating signers of its group (split evenly). It binds when every member signs."""

    transfer: PositiveFloat = 1.0
    commitment: NonNegFloat | None = None  # public goods: the promised contribution


class _Env(_T, frozen=True, tag_field="kind"):
    rounds: PositiveInt = 10
    players: list[str] = msgspec.field(default_factory=list)
    matching: Matching = "round_robin"
    groups: list[list[str]] = msgspec.field(default_factory=list)
    observation: list[Observation] = msgspec.field(default_factory=lambda: ["own"])
    memory: PositiveInt = 5
    communication: CommunicationSpec = msgspec.field(default_factory=CommunicationSpec)
    reputation: ReputationSpec | None = None
    mediator: MediatorSpec | None = None
    contracts: ContractSpec | None = None
    instructions: str = ""


class MatrixGameSpec(_Env, frozen=True, tag="matrix_game"):
    """A repeated two-player game with a declared payoff table (row perspective)."""

    payoffs: dict[str, Any] = msgspec.field(default_factory=dict)
    cooperate: str = ""
    default_action: str = ""

    @property
    def actions(self) -> list[str]:
        return list(self.payoffs)

    def payoff(self, row: str, col: str) -> tuple[float, float]:
        a, b = self.payoffs[row][col]
        return float(a), float(b)

    @property
    def cooperative_action(self) -> str:
        return self.cooperate or self.actions[0]

    @property
    def fallback_action(self) -> str:
        return self.default_action or self.actions[-1]


class PublicGoodsSpec(_Env, frozen=True, tag="public_goods"):
    """N players each contribute from an endowment; the pot is multiplied and shared."""

    endowment: PositiveFloat = 10.0
    multiplier: PositiveFloat = 1.6
    group_size: NonNegInt = 0
    default_contribution: NonNegFloat = 0.0


EnvironmentSpec = MatrixGameSpec | PublicGoodsSpec


def parse_environment(raw: dict[str, Any], agents: list[str]) -> EnvironmentSpec:
    """Decode and check ``[environment]`` against the declared ``agents``.

    Raises:
        EnvironmentConfigError: ``"<dotted.field> <rule>"``, e.g.
            ``environment.rounds must be >= 1``.
    """
    try:
        spec: EnvironmentSpec = msgspec.convert(raw, EnvironmentSpec)
    except msgspec.ValidationError as e:
        raise EnvironmentConfigError(_explain(str(e))) from None
    _check_agents(spec, agents)
    if isinstance(spec, MatrixGameSpec):
        _check_matrix(spec)
    else:
        _check_public_goods(spec, len(players_of(spec, agents)))
    return spec


def kind_of(spec: EnvironmentSpec) -> str:
    """The spec's ``kind`` tag (msgspec keeps tags off the instance)."""
    return "matrix_game" if isinstance(spec, MatrixGameSpec) else "public_goods"


def players_of(spec: EnvironmentSpec, agents: list[str]) -> list[str]:
    """The players: ``players`` if given, else every agent except the mediator."""
    if spec.players:
        return list(spec.players)
    mediator = spec.mediator.agent if spec.mediator else ""
    return [a for a in agents if a != mediator]


def _explain(message: str) -> str:
    rule, _, at = message.partition(" - at `$")
    path = at.rstrip("`").replace("[...]", "")
    field = "environment" + path
    key = re.sub(r"\[\d+\]", "", path).lstrip(".")
    unknown = re.match(r"Object contains unknown field `([^`]+)`", rule)
    if unknown:
        return f"{field}.{unknown.group(1)} is not a known key"
    missing = re.match(r"Object missing required field `([^`]+)`", rule)
    if missing:
        name = f"{field}.{missing.group(1)}"
        extra = " (one of matrix_game, public_goods)" if name == "environment.kind" else ""
        return f"{name} is required{extra}"
    if key in _CHOICES and ("Invalid" in rule or "enum" in rule):
        return f"{field} must be one of {', '.join(_CHOICES[key])}"
    rule = re.sub(r", got `[^`]+`$", "", rule)
    m = re.match(r"Expected `(\w+)`(.*)$", rule)
    if m:
        typ, rest = m.group(1), m.group(2).strip()
        if rest:
            return f"{field} must be {rest}"
        return f"{field} must be of type {typ}"
    return f"{field} {rule[0].lower() + rule[1:]}" if rule else f"{field} is invalid"


def _check_agents(spec: EnvironmentSpec, agents: list[str]) -> None:
    known = set(agents)
    for i, p in enumerate(spec.players):
        if p not in known:
            raise EnvironmentConfigError(
                f"environment.players[{i}] must name a declared agent, got {p!r}"
            )
    if len(set(spec.players)) != len(spec.players):
        raise EnvironmentConfigError("environment.players must not repeat an agent")
    if spec.mediator is not None:
        m = spec.mediator.agent
        if m not in known:
            raise EnvironmentConfigError(
                f"environment.mediator.agent must name a declared agent, got {m!r}"
            )
        if m in spec.players:
            raise EnvironmentConfigError(
                f"environment.mediator.agent must not also be a player, got {m!r}"
            )
    players = players_of(spec, agents)
    if len(players) < 2:
        raise EnvironmentConfigError(
            f"environment.players must hold at least 2 players, got {len(players)}"
        )
    if spec.matching == "fixed":
        if not spec.groups:
            raise EnvironmentConfigError(
                "environment.groups must list the groups when matching is 'fixed'"
            )
        seen: set[str] = set()
        for i, group in enumerate(spec.groups):
            for p in group:
                if p not in players:
                    raise EnvironmentConfigError(
                        f"environment.groups[{i}] must name players, got {p!r}"
                    )
                if p in seen:
                    raise EnvironmentConfigError(
                        f"environment.groups[{i}] repeats a player, got {p!r}"
                    )
                seen.add(p)
            if len(group) < 2:
                raise EnvironmentConfigError(
                    f"environment.groups[{i}] must hold at least 2 players"
                )
    elif spec.groups:
        raise EnvironmentConfigError("environment.groups is only used when matching is 'fixed'")


def _check_matrix(spec: MatrixGameSpec) -> None:
    table = spec.payoffs
    if len(table) < 2:
        raise EnvironmentConfigError(
            f"environment.payoffs must declare at least 2 actions, got {len(table)}"
        )
    actions = list(table)
    for row, cols in table.items():
        if not isinstance(cols, dict):
            raise EnvironmentConfigError(
                f"environment.payoffs.{row} must be a table of column actions"
            )
        missing = [a for a in actions if a not in cols]
        extra = [a for a in cols if a not in actions]
        if missing:
            raise EnvironmentConfigError(
                f"environment.payoffs.{row} must give a payoff pair for every action, got none for {', '.join(missing)}"
            )
        if extra:
            raise EnvironmentConfigError(
                f"environment.payoffs.{row}.{extra[0]} is not a declared action"
            )
        for col, pair in cols.items():
            ok = isinstance(pair, list) and len(pair) == 2
            if not ok or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in pair
            ):
                raise EnvironmentConfigError(
                    f"environment.payoffs.{row}.{col} must be a pair of numbers [row, column]"
                )
    for field, value in (("cooperate", spec.cooperate), ("default_action", spec.default_action)):
        if value and value not in actions:
            raise EnvironmentConfigError(f"environment.{field} must be one of {', '.join(actions)}")
    for i, group in enumerate(spec.groups):
        if len(group) != 2:
            raise EnvironmentConfigError(f"environment.groups[{i}] must be a pair in a matrix game")
    if spec.contracts is not None and spec.contracts.commitment is not None:
        raise EnvironmentConfigError(
            "environment.contracts.commitment is only used by public_goods"
        )


def _check_public_goods(spec: PublicGoodsSpec, n_players: int) -> None:
    if spec.group_size > n_players:
        raise EnvironmentConfigError(
            f"environment.group_size must be <= the number of players ({n_players})"
        )
    if spec.default_contribution > spec.endowment:
        raise EnvironmentConfigError(
            f"environment.default_contribution must be <= endowment ({spec.endowment:g})"
        )
    if spec.group_size == 1:
        raise EnvironmentConfigError("environment.group_size must be 0 (everyone) or >= 2")
    c = spec.contracts
    if c is not None and c.commitment is not None and c.commitment > spec.endowment:
        raise EnvironmentConfigError(
            f"environment.contracts.commitment must be <= endowment ({spec.endowment:g})"
        )
