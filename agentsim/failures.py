"""The failure taxonomy: every coordination failure is a typed, journaled event.

Categories follow ARCHITECTURE section 5 (transport, tool, and the MAST families). Extend the
table; never rename a kind — journals from older runs name them.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

import msgspec

ToolFailureKind = Literal[
    "tool_call_malformed",
    "unknown_tool",
    "invalid_tool_arguments",
    "tool_error",
    "tool_timeout",
]
"""The tool category, also as a type: tools report their problems with these kinds."""

CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "transport": (
        "message_timeout",
        "message_lost",
        "duplicate_delivery",
        "out_of_order",
        "agent_crash",
        "agent_unresponsive",
        "malformed_message",
        "undeliverable",
    ),
    "tool": get_args(ToolFailureKind),
    "specification": (
        "no_final_answer",
        "role_violation",
        "step_repetition",
        "unaware_of_termination",
        "context_overflow",
        "engine_error",
    ),
    "inter_agent": (
        "no_delegation",
        "misrouting",
        "delegation_loop",
        "ignored_peer_input",
        "conformity_flip",
        "no_consensus",
        "deadlock",
        "livelock",
    ),
    "verification": ("premature_termination", "incorrect_verification"),
    "game": ("invalid_action", "promise_broken", "contract_breach_attempt", "mediator_ignored"),
}

KIND_TO_CATEGORY: Final[dict[str, str]] = {
    kind: category for category, kinds in CATEGORIES.items() for kind in kinds
}


def kinds_of(*categories: str) -> frozenset[str]:
    """Every kind of the named categories (raises ``KeyError`` for an unknown category)."""
    return frozenset(kind for category in categories for kind in CATEGORIES[category])


REPORTABLE: Final[frozenset[str]] = kinds_of("transport", "specification")
"""Kinds an ``Error`` from an agent may name (its transport or its engine failed); any other
kind an agent sends is recorded as ``engine_error``."""


class Failure(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One recorded failure.

    Args:
        kind: a kind from ``CATEGORIES``.
        category: derived from ``kind`` when left empty.
        task_id: the task it happened in ("" for run-level failures such as a crash).
        agents: the agents involved.
        round: protocol round or ReAct step.
        evidence: msg ids (or fault ids) that show it.
        detail: one line for people.
        at: seconds since the run started, when it was detected.
    """

    kind: str
    category: str = ""
    task_id: str = ""
    agents: list[str] = msgspec.field(default_factory=list)
    round: int = 0
    evidence: list[str] = msgspec.field(default_factory=list)
    detail: str = ""
    at: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KIND_TO_CATEGORY:
            raise ValueError(f"unknown failure kind {self.kind!r}")
        if not self.category:
            msgspec.structs.force_setattr(self, "category", KIND_TO_CATEGORY[self.kind])
