"""The agent's check of every stream it receives: what was lost, late or repeated, exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentsim.agent.streams import InboundStreams
from agentsim.wire import Envelope, Peer, SeqGap


def env(seq: int, src: str = "bob", msg_id: str = "") -> Envelope:
    return Envelope(
        run_id="r",
        msg_id=msg_id or f"{src}-{seq}",
        seq=seq,
        src=src,
        dst="alice",
        body=Peer(content="x"),
        task_id="t",
    )


def test_a_dropped_peer_message_is_reported_lost_with_the_missing_seq_after_the_grace() -> None:
    s = InboundStreams("alice", grace_s=1.0)
    assert s.see(env(1), 0.0) == []
    assert s.see(env(3), 0.1) == []  # 2 may still come
    assert s.expire(0.5) == []
    [lost] = s.expire(1.2)
    assert lost.kind == "message_lost"
    assert lost.gap == SeqGap(src="bob", dst="alice", first=2, last=2)
    assert lost.ref == "bob-3" and lost.task_id == "t"
    assert lost.detail == "alice never got bob -> alice seq 2 (next came: bob-3)"
    assert s.expire(5.0) == [] and s.flush() == []


def test_a_late_message_is_out_of_order_not_lost() -> None:
    s = InboundStreams("alice", grace_s=1.0)
    for seq in (1, 4):
        s.see(env(seq), 0.0)
    [late] = s.see(env(2), 0.2)
    assert (late.kind, late.detail) == (
        "out_of_order",
        "alice got bob -> alice seq 2 late, after 4",
    )
    [lost] = s.expire(2.0)
    assert lost.gap is not None and (lost.gap.first, lost.gap.last) == (3, 3)


def test_streams_are_separate_per_sender_and_destination() -> None:
    s = InboundStreams("alice", grace_s=1.0)
    for e in (env(1, "bob"), env(1, "runner"), env(2, "bob"), env(2, "runner")):
        assert s.see(e, 0.0) == []
    b = Envelope(run_id="r", msg_id="x", seq=1, src="bob", dst="*", body=Peer(content="y"))
    assert s.see(b, 0.0) == []  # bob's broadcasts are their own stream


def test_a_repeated_message_id_is_a_duplicate() -> None:
    s = InboundStreams("alice", grace_s=1.0)
    s.see(env(1), 0.0)
    [dup] = s.see(env(1), 0.0)
    assert dup.kind == "duplicate_delivery" and dup.ref == "bob-1"


def test_flush_reports_every_open_gap_as_lost() -> None:
    s = InboundStreams("alice", grace_s=60.0)
    s.see(env(5), 0.0)
    s.see(env(3, "carol"), 0.0)
    gaps = {(r.gap.src, r.gap.first, r.gap.last) for r in s.flush() if r.gap}
    assert gaps == {("bob", 1, 4), ("carol", 1, 2)}


def test_a_hostile_seq_costs_one_gap_not_memory() -> None:
    s = InboundStreams("alice", grace_s=1.0)
    s.see(env(2**63), 0.0)
    [lost] = s.flush()
    assert lost.gap is not None and lost.gap.last == 2**63 - 1


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_drops_duplicates_and_reorders_are_each_reported_exactly(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 30))
    fate = data.draw(st.lists(st.sampled_from("kkkkdDr"), min_size=n, max_size=n))
    arrivals: list[int] = []
    late: list[int] = []
    for seq, f in zip(range(1, n + 1), fate, strict=True):
        if f == "k":
            arrivals.append(seq)
        elif f == "D":
            arrivals += [seq, seq]
        elif f == "r":
            late.append(seq)
    # late ones arrive after everything else, within the grace
    arrivals += late
    s = InboundStreams("alice", grace_s=10.0)
    reports = [r for seq in arrivals for r in s.see(env(seq), 0.0)]
    reports += s.flush()
    dropped = {seq for seq, f in zip(range(1, n + 1), fate, strict=True) if f == "d"}
    lost = set()
    for r in reports:
        if r.kind == "message_lost":
            assert r.gap is not None
            lost |= set(range(r.gap.first, r.gap.last + 1))
    # a drop at the end of the stream has no successor: nothing can reveal it
    revealed = {d for d in dropped if any(a > d for a in arrivals)}
    assert lost == revealed
    dups = sum(1 for f in fate if f == "D")
    assert sum(r.kind == "duplicate_delivery" for r in reports) == dups
    late_reported = sum(r.kind == "out_of_order" for r in reports)
    assert late_reported == sum(
        1 for seq in late if any(a > seq for a in arrivals[: len(arrivals) - len(late)])
    )
