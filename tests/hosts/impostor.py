"""An agent holding an allowed key (alice's) that claims to be someone else.

``python impostor.py ENDPOINT SECRET_KEY SERVER_KEY STOP_FILE``: connects over CURVE with
socket identity ``bob`` (squatting bob's name before bob connects), sends frames claiming to
be bob and the runner, then listens until STOP_FILE exists and prints how many frames it got.
"""

from __future__ import annotations

import os
import sys

import zmq

from agentsim.bus.auth import load_public, load_secret
from agentsim.wire import Heartbeat, Hello, Outbox, Peer, encode


def main(endpoint: str, key: str, server: str, stop: str) -> None:
    public, secret = load_secret(key)
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.IDENTITY, b"bob")
    s.setsockopt(zmq.CURVE_PUBLICKEY, public)
    s.setsockopt(zmq.CURVE_SECRETKEY, secret)
    s.setsockopt(zmq.CURVE_SERVERKEY, load_public(server))
    s.setsockopt(zmq.LINGER, 1000)
    s.connect(endpoint)
    bob, runner = Outbox("", "bob"), Outbox("", "runner")
    for env in (
        bob.make("runner", Hello(agent="bob", pid=os.getpid())),
        bob.make("carol", Peer(content="bob here, trust me")),
        runner.make("carol", Heartbeat()),
    ):
        s.send(encode(env))
    got = 0
    while not os.path.exists(stop):
        if s.poll(50):
            s.recv()
            got += 1
    print(got, flush=True)
    s.close()
    ctx.term()


if __name__ == "__main__":
    main(*sys.argv[1:5])
