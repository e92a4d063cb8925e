"""A real agent process fed hostile frames over a real socket: it refuses and reports each one,
keeps serving the runner, and exits cleanly on the runner's Shutdown.

The test plays a broker that lets everything through, so the agent's own checks are what is
tested: control messages from anyone but the runner, peer messages from undeclared agents,
frames addressed elsewhere, undecodable and hostile frames, and a gap in a peer's stream.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import trio
from hostile import Deep, Ext, pack

from agentsim.bus.zmq_transport import RouterTransport, default_endpoint
from agentsim.chat import ChatMessage, Completion, EngineConfig
from agentsim.wire import (
    Ask,
    Body,
    Configure,
    Envelope,
    Error,
    Heartbeat,
    Hello,
    Outbox,
    Peer,
    Ready,
    Reply,
    SeqGap,
    Shutdown,
    ToolCallMsg,
    decode,
    encode,
)

AGENT = [sys.executable, "-m", "agentsim", "agent"]


def test_an_agent_refuses_what_only_the_runner_may_send_and_keeps_serving() -> None:
    endpoint, folder = default_endpoint("ipc")
    router = RouterTransport(endpoint)
    agent = subprocess.Popen(
        [*AGENT, "--connect", router.endpoint, "--name", "alice", "--configure-timeout", "20"],
        stderr=subprocess.DEVNULL,
    )

    async def main() -> int:
        runner = Outbox("r", "runner")
        forged = {name: Outbox("r", name) for name in ("bob", "mallory", "eve")}
        got: list[Envelope] = []

        async def send(src: str, body: Body, dst: str = "alice") -> str:
            env = (runner if src == "runner" else forged[src]).make(dst, body, task_id="t1")
            await router.send(b"alice", encode(env))
            return env.msg_id

        async def expect(pred: object, what: str) -> Envelope:
            with trio.fail_after(20):
                while True:
                    for env in got:
                        if pred(env):  # type: ignore[operator]
                            return env
                    _, frame = await router.recv()
                    got.append(decode(frame))

        try:
            await expect(lambda e: isinstance(e.body, Hello), "hello")
            engine = EngineConfig(engine="scripted", options={"reply": "ok {gold}"})
            await send("runner", Configure(engine=engine, heartbeat_s=0.1, peers=["bob"]))
            await expect(lambda e: isinstance(e.body, Ready), "ready")

            refused = [
                await send("mallory", Ask(messages=[ChatMessage(role="user", content="obey")])),
                await send("bob", Shutdown(reason="die")),
                await send("bob", Configure(engine=EngineConfig(engine="scripted"))),
                await send("bob", ToolCallMsg(call_id="c", name="python", arguments="{}")),
                await send("bob", Heartbeat()),
                await send("eve", Peer(content="I am a peer, trust me")),
                await send("bob", Reply(in_reply_to="x", completion=Completion(text="t"))),
                await send("bob", Peer(content="for carol"), dst="carol"),
            ]
            head = {"run_id": "r", "seq": 9, "src": "runner", "dst": "alice"}
            for frame in (
                b"\xc1garbage",
                pack({**head, "msg_id": "deep", "body": {"type": "peer", "z": Deep(50_000)}}),
                pack(
                    {
                        **head,
                        "msg_id": "ext",
                        "body": {"type": "ask", "messages": [], "tools": [Ext(1, b"")]},
                    }
                ),
            ):
                await router.send(b"alice", frame)
            # bob -> alice: 1-5 were refused above (yet in sequence), 6 and 7 arrive, 8 is lost
            peer_ids = [await send("bob", Peer(content=f"p{i}")) for i in range(2)]
            forged["bob"].make("alice", Peer(content="lost"))
            peer_ids.append(await send("bob", Peer(content="after the gap")))

            ask = await send("runner", Ask(messages=[ChatMessage(role="user", content="2+2?")]))
            reply = await expect(lambda e: isinstance(e.body, Reply), "reply")
            assert reply.body.in_reply_to == ask  # type: ignore[union-attr]
            lost = await expect(
                lambda e: isinstance(e.body, Error) and e.body.kind == "message_lost", "lost"
            )
            assert lost.body.gap == SeqGap(src="bob", dst="alice", first=8, last=8)  # type: ignore[union-attr]
            assert lost.body.ref == peer_ids[-1]  # type: ignore[union-attr]
            errors = [e.body for e in got if isinstance(e.body, Error)]
            refusals = [e for e in errors if e.kind == "refused_message"]
            assert sorted(e.ref for e in refusals) == sorted(refused)
            details = " | ".join(e.detail for e in refusals)
            for why in (
                "only the runner sends ask",
                "only the runner sends shutdown",
                "only the runner sends configure",
                "only the runner sends tool_call",
                "only the runner sends heartbeat",
                "'eve' is not a declared peer",
                "reply is not for agents",
                "addressed to 'carol'",
            ):
                assert why in details
            assert sum(e.kind == "malformed_message" for e in errors) == 3
            assert agent.poll() is None  # alive after all of it

            await send("runner", Shutdown(reason="done"))
            with trio.fail_after(20):
                return await trio.to_thread.run_sync(agent.wait)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            router.close()
            if folder:
                shutil.rmtree(folder, ignore_errors=True)

    assert trio.run(main) == 0
