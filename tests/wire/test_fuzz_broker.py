"""Structured fuzzing of the broker over real ZeroMQ sockets.

Three agents join (alice, bob, mallory); then every socket — theirs, a stranger's (eve) and
one that calls itself ``runner`` — sends hypothesis-made frames: every body kind to every
destination, honest and forged ``src``, hostile contents and random bytes. The broker must
keep routing, and the journal alone must account for every frame.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trio
from hostile import frames
from hypothesis import HealthCheck, given, settings

from agentsim.bus.broker import Broker
from agentsim.bus.zmq_transport import DealerLink, RouterTransport, default_endpoint
from agentsim.failures import Failure
from agentsim.journal import Journal, read_journal
from agentsim.wire import MAX_FRAME_BYTES, Envelope, Hello, Outbox, Peer, decode, encode

MEMBERS = ["alice", "bob", "mallory"]
SENDERS = [*MEMBERS, "eve", "runner"]
ALLOWED_FAILURES = {
    "malformed_message",
    "refused_message",
    "duplicate_delivery",
    "message_lost",
    "out_of_order",
    "undeliverable",
}


class Bus:
    """A broker on a real ROUTER socket (ipc) and one DEALER per sender name."""

    def __init__(self, path: Path) -> None:
        self.journal = Journal(path, clock=trio.current_time)
        self.endpoint, self.dir = default_endpoint("ipc")
        self.router = RouterTransport(self.endpoint)
        self.failures: list[Failure] = []
        self.to_runner: list[Envelope] = []
        self.broker = Broker(
            self.router, self.journal, on_message=self._on_message, on_failure=self.failures.append
        )
        self.links: dict[str, DealerLink] = {}
        self.outboxes = {name: Outbox("fuzz", name) for name in MEMBERS}

    def _on_message(self, env: Envelope) -> None:  # the runner's part: declared agents join
        self.to_runner.append(env)
        if isinstance(env.body, Hello) and env.src in MEMBERS:
            self.broker.agents.add(env.src)

    def link(self, name: str) -> DealerLink:
        if name not in self.links:
            self.links[name] = DealerLink(self.router.endpoint, name)
        return self.links[name]

    async def until(self, cond: object, what: str) -> None:
        with trio.fail_after(20):
            while not cond():  # type: ignore[operator]  # noqa: ASYNC110 - broker counters
                await trio.sleep(0.002)

    def close(self) -> None:
        for link in self.links.values():
            link.close()
        self.router.close()
        self.journal.close()
        import shutil

        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def check_accounting(path: Path, stats: dict[str, object], sent: Counter[str]) -> None:
    """From the journal alone: every frame in is accepted, a heartbeat, a duplicate, malformed
    or refused — per sender too — and each counted line is there."""
    recs = list(read_journal(path))
    lines = Counter(r["event"] for r in recs)
    envelopes_in = [r for r in recs if r["event"] == "envelope" and r["dir"] == "in"]
    assert stats["accepted"] == len(envelopes_in)
    assert stats["malformed"] == lines["malformed"]
    assert stats["refused"] == lines["refused"]
    assert stats["duplicates"] == lines["duplicate"]
    buckets = ("accepted", "heartbeats", "duplicates", "malformed", "refused")
    assert stats["received"] == sum(stats[b] for b in buckets)  # type: ignore[misc]
    by_sender = stats["by_sender"]
    assert isinstance(by_sender, dict)
    for who, row in by_sender.items():
        assert row["received"] == sum(row[b] for b in buckets), who
    assert {w: r["received"] for w, r in by_sender.items() if w in sent} == dict(sent)
    # nothing accepted breaks the rules: src is a member (or says Hello, for the runner to
    # judge), agents send no control messages, peer messages go to agents, the rest to the runner
    for r in envelopes_in:
        assert r["src"] in MEMBERS or (r["kind"] == "hello" and r["src"] == "eve"), r
        assert r["kind"] not in {"ask", "configure", "shutdown", "tool_call"}
        assert (r["kind"] == "peer") == (r["dst"] != "runner"), r
    for r in recs:
        if r["event"] == "refused" and r["claimed"] != r["src"]:
            assert "is not the sender" in r["reason"]


async def join(bus: Bus, sent: Counter[str]) -> None:
    for name in MEMBERS:
        await bus.link(name).send(
            encode(bus.outboxes[name].make("runner", Hello(agent=name, pid=1)))
        )
        sent[name] += 1
    await bus.until(lambda: bus.broker.agents == set(MEMBERS), "members joined")


async def sentinel(bus: Bus, sent: Counter[str]) -> None:
    """A legitimate peer message after the storm still arrives: the broker keeps routing."""
    env = bus.outboxes["alice"].make("bob", Peer(content="still here"))
    await bus.link("alice").send(encode(env))
    sent["alice"] += 1
    with trio.fail_after(20):
        while True:
            got = decode(await bus.link("bob").recv())
            assert isinstance(got.body, Peer) and got.src in MEMBERS
            if got.msg_id == env.msg_id:
                return


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(storm=frames(SENDERS, min_size=5, max_size=40))
def test_hostile_frames_from_every_sender_are_accounted_for_and_routing_goes_on(
    tmp_path_factory: pytest.TempPathFactory, storm: list[tuple[str, bytes]]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "journal.jsonl"
    sent: Counter[str] = Counter()
    stats: dict[str, object] = {}

    async def main() -> None:
        bus = Bus(path)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(bus.broker.serve)
                await join(bus, sent)
                for name, frame in storm:
                    await bus.link(name).send(frame)
                    sent[name] += 1
                await sentinel(bus, sent)
                await bus.until(lambda: bus.broker.received == sum(sent.values()), "all in")
                stats.update(bus.broker.stats())
                nursery.cancel_scope.cancel()
        finally:
            bus.close()
        assert {f.kind for f in bus.failures} <= ALLOWED_FAILURES

    trio.run(main)
    check_accounting(path, stats, sent)


def test_an_oversized_frame_never_reaches_the_broker_and_its_sender_can_go_on(
    tmp_path: Path,
) -> None:
    sent: Counter[str] = Counter()

    async def main() -> None:
        bus = Bus(tmp_path / "journal.jsonl")
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(bus.broker.serve)
                await join(bus, sent)
                await bus.link("mallory").send(b"\x00" * (MAX_FRAME_BYTES + 1))  # cut by libzmq
                await bus.link("bob").send(b"\x00" * MAX_FRAME_BYTES)  # at the limit: malformed
                sent["bob"] += 1
                # mallory's connection was cut (with what was queued behind the big frame); the
                # socket reconnects by itself and is heard again
                joined = sent.pop("mallory")
                with trio.fail_after(20):
                    while bus.broker.by_sender.row("mallory")[0] == joined:
                        hello = bus.outboxes["mallory"].make(
                            "runner", Hello(agent="mallory", pid=1)
                        )
                        await bus.link("mallory").send(encode(hello))
                        await trio.sleep(0.1)
                await sentinel(bus, sent)
                await bus.until(
                    lambda: (
                        bus.broker.received - bus.broker.by_sender.row("mallory")[0]
                        == sum(sent.values())
                    ),
                    "all in",
                )
                stats = bus.broker.stats()
                nursery.cancel_scope.cancel()
        finally:
            bus.close()
        row = stats["by_sender"]["mallory"]  # type: ignore[index]
        assert row["received"] == row["accepted"] >= 2  # the oversized frame was never counted
        assert stats["by_sender"]["bob"]["malformed"] == 1  # type: ignore[index]
        check_accounting(tmp_path / "journal.jsonl", stats, sent)

    trio.run(main)
