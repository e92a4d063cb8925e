"""Hostile contents in well-formed frames: decode refuses them with ``MalformedFrame`` (never
another exception), and whatever it accepts can be journaled and sent on."""

from __future__ import annotations

import msgspec
import pytest
from hostile import AGENTS, Deep, Ext, envelope, pack
from hypothesis import given, settings
from hypothesis import strategies as st

from agentsim.chat import ChatMessage, Completion, EngineConfig
from agentsim.journal import envelope_record
from agentsim.wire import (
    JSON_MAX_DEPTH,
    MAX_FRAME_BYTES,
    RUNNER,
    Ask,
    Configure,
    Envelope,
    Error,
    Heartbeat,
    Hello,
    MalformedFrame,
    Peer,
    Ready,
    Reply,
    Shutdown,
    ToolCallMsg,
    ToolResultMsg,
    decode,
    encode,
    refusal,
)

HEAD = {"run_id": "r", "msg_id": "m", "seq": 1, "src": "alice", "dst": "runner"}


def frame_with(body: dict[str, object], **head: object) -> bytes:
    return pack({**HEAD, **head, "body": body})


def assert_safe(frame: bytes) -> Envelope | None:
    """Decode → MalformedFrame, or an envelope that journals as JSON and round-trips."""
    try:
        env = decode(frame)
    except MalformedFrame:
        return None
    msgspec.json.encode(envelope_record(env, len(frame)))
    assert decode(encode(env)) == env
    return env


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([*AGENTS, "eve"]).flatmap(lambda s: envelope(s, 1)))
def test_any_hostile_envelope_is_malformed_or_safe_to_journal(env: dict[str, object]) -> None:
    assert_safe(pack(env))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_malformed_or_safe(frame: bytes) -> None:
    assert_safe(frame)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (frame_with({"type": "peer", "content": "x", "z": Deep(5000)}), "deep"),
        (frame_with({"type": "peer", "content": "x"}, zzz=Deep(3000, maps=True)), "deep"),
        (frame_with({"type": "peer", "content": Deep(100_000)}), "Expected `str`, got `array`"),
        (
            frame_with({"type": "ask", "messages": [], "tools": [{"function": Ext(5, b"x")}]}),
            "not a JSON value",
        ),
        (
            frame_with({"type": "ask", "messages": [], "response_schema": {"a": [Ext(1, b"")]}}),
            "response_schema.a[0] is a Ext",
        ),
        (
            frame_with({"type": "ask", "messages": [], "response_schema": {"a": {(1, 2): 1}}}),
            "key, JSON keys are strings",
        ),
        (
            frame_with({"type": "ask", "messages": [], "response_schema": {"n": float("nan")}}),
            "not a JSON number",
        ),
        (
            frame_with({"type": "ask", "messages": [], "response_schema": {"b": b"\x00"}}),
            "is a bytes",
        ),
        (
            frame_with({"type": "ask", "messages": [], "tools": [{"type": "function"}]}),
            "not an OpenAI tool schema",
        ),
        (
            frame_with(
                {
                    "type": "configure",
                    "engine": {"engine": "scripted", "options": {"t": Ext(-1, b"1234")}},
                }
            ),
            "engine.options",
        ),
        (frame_with({"type": "peer", "content": "x"}, src="a" * 300), "Expected `str` of length"),
        (frame_with({"type": "peer", "content": "x"}, seq=-1), ">= 0"),
        (frame_with({"type": "peer", "content": "\ud800"}), "utf-8"),
        (frame_with({"type": "teleport"}), "Invalid value 'teleport'"),
        (b"\x00" * (MAX_FRAME_BYTES + 1), "exceeds"),
    ],
)
def test_hostile_contents_are_malformed_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedFrame) as info:
        decode(frame)
    assert reason.lower() in str(info.value).lower()


def test_json_fields_are_bounded_in_depth_but_ordinary_schemas_pass() -> None:
    schema: dict[str, object] = {"type": "object"}
    node = schema
    for _ in range(JSON_MAX_DEPTH - 2):
        node["properties"] = node = {}
    ok = Ask(messages=[ChatMessage(role="user", content="q")], response_schema=schema)
    assert decode(encode_env(ok)).body == ok
    node["x"] = {"y": 1}
    with pytest.raises(ValueError, match="nested deeper than 32"):
        Ask(messages=[], response_schema=schema)


def test_an_ext_value_in_an_unknown_field_is_skipped_not_journaled() -> None:
    env = assert_safe(
        frame_with({"type": "peer", "content": "hi", "z": Ext(3, b"x")}, w=Ext(1, b""))
    )
    assert env is not None and env.body == Peer(content="hi")


def encode_env(body: object) -> bytes:
    return encode(Envelope(run_id="r", msg_id="m", seq=1, src="runner", dst="a", body=body))  # type: ignore[arg-type]


def env_of(body: object, src: str = "alice", dst: str = RUNNER) -> Envelope:
    return Envelope(run_id="r", msg_id="m", seq=1, src=src, dst=dst, body=body)  # type: ignore[arg-type]


AGENT_TO_RUNNER = [
    Hello(agent="alice", pid=1),
    Ready(agent="alice", pid=1, engine="e", model="m", load_s=0, rss_bytes=0),
    Reply(in_reply_to="x", completion=Completion(text="t")),
    ToolResultMsg(call_id="c", content="r"),
    Heartbeat(),
    Error(kind="engine_error", detail="d"),
]
RUNNER_ONLY = [
    Configure(engine=EngineConfig(engine="scripted")),
    Ask(messages=[]),
    ToolCallMsg(call_id="c", name="n", arguments="{}"),
    Shutdown(),
]


@pytest.mark.parametrize("body", AGENT_TO_RUNNER, ids=lambda b: type(b).__name__)
def test_agents_report_to_the_runner_only(body: object) -> None:
    assert refusal(env_of(body), "alice") is None
    assert "goes to the runner" in str(refusal(env_of(body, dst="bob"), "alice"))
    assert "goes to the runner" in str(refusal(env_of(body, dst="*"), "alice"))


@pytest.mark.parametrize("body", RUNNER_ONLY, ids=lambda b: type(b).__name__)
@pytest.mark.parametrize("dst", [RUNNER, "bob", "*", "alice"])
def test_no_agent_sends_control_messages(body: object, dst: str) -> None:
    assert "only the runner sends" in str(refusal(env_of(body, dst=dst), "alice"))


def test_peer_messages_go_between_agents_and_src_must_be_the_sender() -> None:
    peer = Peer(content="p")
    assert refusal(env_of(peer, dst="bob"), "alice") is None
    assert refusal(env_of(peer, dst="*"), "alice") is None
    assert "not 'runner'" in str(refusal(env_of(peer, dst=RUNNER), "alice"))
    assert "not 'alice'" in str(refusal(env_of(peer, dst="alice"), "alice"))
    assert "is not the sender 'mallory'" in str(refusal(env_of(peer, dst="bob"), "mallory"))
    for name in (RUNNER, "*", ""):
        assert "no agent may be called" in str(refusal(env_of(Heartbeat(), src=name), name))


def test_any_exception_from_the_decoder_is_malformed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Exploding:
        def decode(self, frame: bytes) -> Envelope:
            raise MemoryError("a length prefix of 4 GiB")

    monkeypatch.setattr("agentsim.wire._decoder", Exploding())
    with pytest.raises(MalformedFrame, match="MemoryError: a length prefix of 4 GiB"):
        decode(b"\xdd\xff\xff\xff\xff")
