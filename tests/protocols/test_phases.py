"""A protocol's phases: declared once (enum + transition table), moved through one method."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agentsim.protocols import PROTOCOLS, ProtocolLoadError, load_protocol_class
from agentsim.protocols.base import BaseProtocol, InvalidTransition, Outcome, TaskDriver
from agentsim.tasks.base import Task
from agentsim.testing import scenario_from_toml


class Recorder:
    """Just the two driver calls a phase machine makes."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, str]] = []
        self.phases: list[str] = []

    def fail(self, kind: str, *, detail: str = "", **_: Any) -> None:
        self.failures.append((kind, detail))

    def phase(self, protocol: str, phase: str, **fields: Any) -> None:
        self.phases.append(phase)


class Ping(BaseProtocol):
    name = "ping"

    class Phase(enum.Enum):
        START = "start"
        ASK = "ask"
        DONE = "done"

    TRANSITIONS: ClassVar = {Phase.START: {Phase.ASK}, Phase.ASK: {Phase.ASK, Phase.DONE}}

    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        return Outcome(answer="")


def _ping() -> Ping:
    return Ping(scenario_from_toml('[agents.a]\nengine = "scripted"\n'))


def test_allowed_transitions_are_journaled_in_order() -> None:
    rec = Recorder()
    phases = _ping().phases(rec)  # type: ignore[arg-type]
    phases.to(Ping.Phase.ASK)
    phases.to(Ping.Phase.ASK)
    phases.to(Ping.Phase.DONE)
    assert rec.phases == ["ask", "ask", "done"] and rec.failures == []
    assert phases.current is Ping.Phase.DONE


def test_invalid_transition_is_recorded_as_role_violation_then_raised() -> None:
    rec = Recorder()
    phases = _ping().phases(rec)  # type: ignore[arg-type]
    with pytest.raises(InvalidTransition, match="start -> done in ping"):
        phases.to(Ping.Phase.DONE)
    assert rec.failures == [("role_violation", "ping: start -> done is not allowed")]
    assert rec.phases == []  # nothing journaled as entered


def test_leaving_done_is_invalid() -> None:
    rec = Recorder()
    phases = _ping().phases(rec)  # type: ignore[arg-type]
    phases.to(Ping.Phase.ASK)
    phases.to(Ping.Phase.DONE)
    with pytest.raises(InvalidTransition):
        phases.to(Ping.Phase.ASK)
    assert [k for k, _ in rec.failures] == ["role_violation"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('{"start": {"ask"}}', "must use Bad.Phase members"),
        ("{Phase.START: {Phase.DONE}}", "no way out of ASK"),
        ("{Phase.START: {Phase.DONE}, Phase.ASK: {Phase.DONE}}", "never reaches ASK"),
    ],
)
def test_a_wrong_transition_table_fails_when_the_class_is_defined(table: str, message: str) -> None:
    source = (
        "class Bad(BaseProtocol):\n"
        "    class Phase(enum.Enum):\n"
        "        START = 'start'\n        ASK = 'ask'\n        DONE = 'done'\n"
        f"    TRANSITIONS = {table}\n"
    )
    with pytest.raises(TypeError, match=message):
        exec(source, {"BaseProtocol": BaseProtocol, "enum": enum})


@pytest.mark.parametrize("kind", sorted(PROTOCOLS))
def test_every_builtin_protocol_declares_its_transitions(kind: str) -> None:
    cls = load_protocol_class(kind)
    assert cls._transitions, kind
    assert set(cls._transitions) | {cls.Phase["DONE"]} == set(cls.Phase)


def test_a_user_protocol_file_with_a_wrong_table_is_one_line_of_bad_input(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "import enum\nfrom agentsim.protocols.base import BaseProtocol\n"
        "class Mine(BaseProtocol):\n"
        "    class Phase(enum.Enum):\n        START = 'start'\n        DONE = 'done'\n"
        "    TRANSITIONS = {Phase.START: {'done'}}\n"
    )
    with pytest.raises(ProtocolLoadError, match=r"'mine.py:Mine': Mine.TRANSITIONS must use"):
        load_protocol_class("mine.py:Mine", tmp_path)
