"""What the runner asks of a launcher, and what it gets back for each agent."""

from __future__ import annotations

from typing import Protocol

import msgspec
import trio


class AgentLaunch(msgspec.Struct, frozen=True, kw_only=True):
    """One agent to start: who it is, where the broker is, and its share of the host.

    Args:
        name: the agent's name (its socket identity).
        endpoint: the broker endpoint it connects to.
        run_id: the run it joins.
        threads: compute threads it may use (engine threads).
        env: extra environment variables (e.g. its CURVE keys).
    """

    name: str
    endpoint: str
    run_id: str
    threads: int = 1
    env: dict[str, str] = msgspec.field(default_factory=dict)


class AgentHandle(Protocol):
    """A started agent as the runner sees it: a pid, an exit to wait for, ways to stop it."""

    name: str
    pid: int

    async def wait(self) -> int:
        """Exit code once the agent has stopped."""
        ...

    def poll(self) -> int | None:
        """Exit code if it has stopped, else ``None`` (never blocks)."""
        ...

    def terminate(self) -> None:
        """Ask it to stop (a paused agent is resumed first so it can)."""
        ...

    def kill(self) -> None:
        """Stop it now."""
        ...

    def pause(self) -> None:
        """Freeze it (SIGSTOP for a process): the ``pause`` fault."""
        ...

    def resume(self) -> None:
        """Undo ``pause``."""
        ...


def placement(handle: AgentHandle | None) -> dict[str, str]:
    """Where a launcher placed an agent (``node_id``, ``node_ip``, ...), for launchers that
    place agents on other machines (a handle's optional ``node``); ``{}`` otherwise."""
    node = getattr(handle, "node", None)
    return {str(k): str(v) for k, v in node.items()} if isinstance(node, dict) else {}


def exit_detail(handle: AgentHandle | None) -> str:
    """What the launcher knows of an agent's end beyond its exit code (a handle's optional
    ``exit_detail``: e.g. the node Ray lost); ``""`` otherwise."""
    detail = getattr(handle, "exit_detail", "")
    return detail if isinstance(detail, str) else ""


class Launcher(Protocol):
    """Starts agents. ``start`` returns once the agent is started (not yet ready: the
    runner waits for its ``Ready``); ``close`` releases what the launcher holds and is called
    once, after every handle has stopped."""

    async def start(self, launch: AgentLaunch, *, nursery: trio.Nursery) -> AgentHandle: ...

    def close(self) -> None: ...
