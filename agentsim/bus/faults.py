"""The fault layer the broker consults for every delivery.

``plan`` returns one ``(delay_s, fault_id)`` per copy to deliver: ``[]`` drops the envelope,
two entries duplicate it, a positive delay holds it back. Every injected fault is journaled
by the layer with its ``fault_id`` so a failure can be traced to its cause.
"""

from __future__ import annotations

from typing import Protocol

from agentsim.journal import Journal
from agentsim.wire import Envelope


class FaultLayer(Protocol):
    def plan(self, env: Envelope, dst: str, journal: Journal) -> list[tuple[float, str]]:
        """How to deliver ``env`` to ``dst``."""
        ...


class NoFaults:
    """Deliver everything once, now."""

    def plan(self, env: Envelope, dst: str, journal: Journal) -> list[tuple[float, str]]:
        return [(0.0, "")]
