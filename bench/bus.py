"""Bus benchmark: the agentsim broker vs a bare pyzmq ROUTER relay, measured in one run.

Topology for both: two processes (ping, pong) with DEALER sockets connected to a ROUTER in this
process that relays every frame to the other side. ``bare`` relays raw bytes with blocking
pyzmq; ``agentsim`` runs the real ``Broker`` (decode, sequence checks, journal, fault layer,
routing) on trio, and the two processes are trio programs sending ``Peer`` envelopes.
Then ``ask``: the whole runner with one scripted agent process, timing ``driver.ask`` round
trips — the framework overhead per ask.

    python bench/bus.py [--n 20000] [--window 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import zmq

HERE = Path(__file__).resolve().parent


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


# ---- peers (run as subprocesses) -------------------------------------------------------------
def bare_peer(endpoint: str, name: str, role: str, n: int, window: int) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.IDENTITY, name.encode())
    s.connect(endpoint)
    other = b"pong" if role == "ping" else b"ping"
    s.send_multipart([b"hello"])
    if role == "pong":
        for _ in range(n * 2):
            frame = s.recv()
            s.send_multipart([other, frame])
        return
    time.sleep(0.3)
    rtts = []
    for _ in range(min(n, 2000)):  # latency: one in flight
        t0 = time.perf_counter_ns()
        s.send_multipart([other, b"x" * 64])
        s.recv()
        rtts.append((time.perf_counter_ns() - t0) / 1e3)
    rest = n * 2 - len(rtts)
    t0 = time.perf_counter()
    sent = got = 0
    while got < rest:  # throughput: a window of messages in flight
        while sent < rest and sent - got < window:
            s.send_multipart([other, b"x" * 64])
            sent += 1
        s.recv()
        got += 1
    dt = time.perf_counter() - t0
    print(json.dumps({"rtt_us": rtts, "msgs_per_s": 2 * got / dt}))


def agentsim_peer(endpoint: str, name: str, role: str, n: int, window: int) -> None:
    import trio

    from agentsim.bus.zmq_transport import DealerLink
    from agentsim.wire import Hello, Outbox, Peer, decode, encode

    async def main() -> None:
        link = DealerLink(endpoint, name)
        ob = Outbox("bench", name)
        other = "pong" if role == "ping" else "ping"
        await link.send(encode(ob.make("runner", Hello(agent=name, pid=0))))
        if role == "pong":
            for _ in range(n * 2):
                env = decode(await link.recv())
                await link.send(encode(ob.make(other, env.body)))
            link.close()
            return
        await trio.sleep(0.3)
        body = Peer(content="x" * 64)
        rtts = []
        for _ in range(min(n, 2000)):
            t0 = time.perf_counter_ns()
            await link.send(encode(ob.make(other, body)))
            decode(await link.recv())
            rtts.append((time.perf_counter_ns() - t0) / 1e3)
        rest = n * 2 - len(rtts)
        t0 = time.perf_counter()
        sent = got = 0
        while got < rest:
            while sent < rest and sent - got < window:
                await link.send(encode(ob.make(other, body)))
                sent += 1
            decode(await link.recv())
            got += 1
        dt = time.perf_counter() - t0
        print(json.dumps({"rtt_us": rtts, "msgs_per_s": 2 * got / dt}))
        link.close()

    trio.run(main)


# ---- relays (in this process) ----------------------------------------------------------------
def spawn(
    kind: str, endpoint: str, n: int, window: int
) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    cmd = [
        sys.executable,
        __file__,
        "--peer",
        kind,
        "--endpoint",
        endpoint,
        "--n",
        str(n),
        "--window",
        str(window),
    ]
    pong = subprocess.Popen([*cmd, "--role", "pong"], stdout=subprocess.PIPE, text=True)
    ping = subprocess.Popen([*cmd, "--role", "ping"], stdout=subprocess.PIPE, text=True)
    return ping, pong


def run_bare(n: int, window: int) -> dict[str, float]:
    ctx = zmq.Context()
    r = ctx.socket(zmq.ROUTER)
    port = r.bind_to_random_port("tcp://127.0.0.1")
    ping, pong = spawn("bare", f"tcp://127.0.0.1:{port}", n, window)
    stop = threading.Event()

    def relay() -> None:
        poller = zmq.Poller()
        poller.register(r, zmq.POLLIN)
        while not stop.is_set():
            if not poller.poll(100):
                continue
            frames = r.recv_multipart()
            if len(frames) == 3:
                r.send_multipart([frames[1], frames[2]])

    t = threading.Thread(target=relay, daemon=True)
    t.start()
    out, _ = ping.communicate(timeout=600)
    pong.wait(timeout=60)
    stop.set()
    t.join()
    r.close(0)
    return summarize(json.loads(out))


def run_agentsim(n: int, window: int, faults: dict[str, object] | None = None) -> dict[str, float]:
    import trio

    from agentsim.bus.broker import Broker
    from agentsim.bus.zmq_transport import RouterTransport
    from agentsim.journal import Journal

    result: dict[str, float] = {}

    async def main() -> None:
        tmp = Path(tempfile.mkdtemp(prefix="agentsim-bench-"))
        journal = Journal(tmp / "journal.jsonl", clock=trio.current_time)
        transport = RouterTransport("tcp://127.0.0.1:*")
        layer = None
        if faults is not None:
            from agentsim.bus.faults_seeded import SeededFaults, parse_faults

            layer = SeededFaults(parse_faults(faults, ["ping", "pong"]), seed=1)
            layer.start_clock()
        broker = Broker(
            transport,
            journal,
            on_message=lambda env: broker.agents.add(env.src),
            on_failure=lambda f: None,
            faults=layer,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(broker.serve)
            ping, pong = spawn("agentsim", transport.endpoint, n, window)
            out = await trio.to_thread.run_sync(lambda: ping.communicate(timeout=600)[0])
            await trio.to_thread.run_sync(lambda: pong.wait(timeout=60))
            result.update(summarize(json.loads(out)))
            result["journal_lines"] = journal.count
            nursery.cancel_scope.cancel()
        journal.close()
        transport.close()

    trio.run(main)
    return result


ASK_LOOP = """
from agentsim.chat import ChatMessage
from agentsim.protocols.base import BaseProtocol, Outcome


class AskLoop(BaseProtocol):
    name = "ask_loop"

    async def run_task(self, task, driver):
        agent = driver.agents[0]
        msgs = [ChatMessage(role="user", content=task.question)]
        for i in range(int(self.spec.options.get("n", 1000))):
            await driver.ask(agent, msgs, round=i)
        return Outcome(answer="Final Answer: 0")
"""


def run_asks(n: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="agentsim-bench-ask-"))
    (tmp / "ask_loop.py").write_text(ASK_LOOP)
    (tmp / "t.jsonl").write_text('{"question": "ping", "answer": "0"}\n')
    (tmp / "s.toml").write_text(
        textwrap.dedent(f"""
        [run]
        name = "bench-ask"
        [tasks]
        suite = "t.jsonl"
        [agents.a]
        engine = "scripted"
        options = {{ reply = "pong" }}
        [protocol]
        kind = "ask_loop.py:AskLoop"
        options = {{ n = {n} }}
    """)
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "agentsim",
            str(tmp / "s.toml"),
            "--out",
            str(tmp / "runs"),
            "--quiet",
        ],
        check=True,
        capture_output=True,
    )
    run = next((tmp / "runs").iterdir())
    sent: dict[str, float] = {}
    rtts: list[float] = []
    for line in (run / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") != "envelope":
            continue
        if rec["kind"] == "ask":
            sent[rec["msg_id"]] = rec["t"]
        elif rec["kind"] == "reply":
            rtts.append((rec["t"] - sent[rec["body"]["in_reply_to"]]) * 1e6)
    return {"ask_p50_us": statistics.median(rtts), "ask_p99_us": pct(rtts, 99), "asks": len(rtts)}


def summarize(d: dict[str, object]) -> dict[str, float]:
    rtts = [float(x) for x in d["rtt_us"]]  # type: ignore[attr-defined]
    return {
        "p50_us": statistics.median(rtts),
        "p99_us": pct(rtts, 99),
        "msgs_per_s": float(d["msgs_per_s"]),
    }  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--peer", choices=["bare", "agentsim"])
    ap.add_argument("--role")
    ap.add_argument("--endpoint")
    args = ap.parse_args()
    if args.peer == "bare":
        return bare_peer(args.endpoint, args.role, args.role, args.n, args.window)
    if args.peer == "agentsim":
        return agentsim_peer(args.endpoint, args.role, args.role, args.n, args.window)
    bare = run_bare(args.n, args.window)
    ours = run_agentsim(args.n, args.window)
    asks = run_asks(2000)
    print(
        f"bus benchmark: {args.n} round trips per side, window {args.window}, 64-byte payloads, tcp loopback"
    )
    print(f"| {'path':<28} | {'RTT p50 µs':>10} | {'RTT p99 µs':>10} | {'msgs/s':>10} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 12}|{'-' * 12}|")
    print(
        f"| {'bare pyzmq ROUTER relay':<28} | {bare['p50_us']:>10.0f} | {bare['p99_us']:>10.0f} | {bare['msgs_per_s']:>10.0f} |"
    )
    print(
        f"| {'agentsim broker (trio)':<28} | {ours['p50_us']:>10.0f} | {ours['p99_us']:>10.0f} | {ours['msgs_per_s']:>10.0f} |"
    )
    print(
        f"| {'ratio agentsim / bare':<28} | {ours['p50_us'] / bare['p50_us']:>10.2f} | {ours['p99_us'] / bare['p99_us']:>10.2f} | {ours['msgs_per_s'] / bare['msgs_per_s']:>10.2f} |"
    )
    overhead = asks["ask_p50_us"] - bare["p50_us"]
    print()
    print(
        f"driver.ask round trip (runner → scripted agent → runner, {asks['asks']:.0f} asks): "
        f"p50 {asks['ask_p50_us']:.0f} µs, p99 {asks['ask_p99_us']:.0f} µs; "
        f"overhead vs bare relay RTT p50: {overhead / 1000:.3f} ms (target ≤ 1 ms)"
    )
    print(
        f"throughput target ≥ 0.5× bare: {'met' if ours['msgs_per_s'] >= 0.5 * bare['msgs_per_s'] else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
