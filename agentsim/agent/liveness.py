"""What an agent checks about the world around it: is its runner still there, may it act on
a frame, and how much memory it holds.

Kept apart from the main loop (``core.py``) because each piece is a plain function of its
inputs: the refusal rule is the agent's half of ``wire.refusal`` (the broker's half), and the
parent watch is the same on every launcher.
"""

from __future__ import annotations

import contextlib
import os

import trio

from agentsim.wire import BROADCAST, CONTROL, RUNNER, Envelope, Peer, body_kind

__all__ = ["AgentExit", "refusal", "rss_bytes", "watch_parent"]


class AgentExit(Exception):
    """The agent stops; ``code`` becomes the process exit status."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def rss_bytes() -> int:
    """This process's resident memory (0 where ``/proc`` is not readable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def refusal(env: Envelope, name: str, peers: frozenset[str]) -> str | None:
    """Why agent ``name`` (accepting ``Peer`` messages from ``peers``) must not act on
    ``env``; ``None``: it may. Control kinds come from the runner only."""
    kind = body_kind(env.body)
    if env.dst not in (name, BROADCAST):
        return f"addressed to {env.dst[:64]!r}"
    if env.src == RUNNER:
        return None if isinstance(env.body, CONTROL) else f"the runner does not send {kind}"
    if isinstance(env.body, Peer):
        if env.src not in peers:
            return f"{env.src[:64]!r} is not a declared peer"
        return None
    if isinstance(env.body, CONTROL):
        return f"only the runner sends {kind}"
    return f"{kind} is not for agents"


async def watch_parent(parent_pid: int) -> None:
    """Raise ``AgentExit(6)`` when process ``parent_pid`` (the runner, or the forkserver) is
    gone. Waits on its pidfd, which becomes readable the moment the parent exits, even by
    SIGKILL (Linux's PDEATHSIG would fire when the *thread* that spawned us exits, which
    trio's worker threads do); where there are no pidfds, polls ``getppid`` every 0.2 s."""
    fd = -1
    with contextlib.suppress(AttributeError, OSError):
        fd = os.pidfd_open(parent_pid)
    try:
        if os.getppid() != parent_pid:  # it died before we started watching
            raise AgentExit(6, "runner process gone")
        if fd >= 0:
            await trio.lowlevel.wait_readable(fd)
        else:
            while os.getppid() == parent_pid:  # noqa: ASYNC110 - no pidfds: poll
                await trio.sleep(0.2)
        raise AgentExit(6, "runner process gone")
    finally:
        if fd >= 0:
            trio.lowlevel.notify_closing(fd)
            os.close(fd)
