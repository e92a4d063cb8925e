"""Real ZeroMQ sockets driven by trio: ordering, concurrency, no lost wake-ups."""

from __future__ import annotations

import shutil

import trio
import zmq

from agentsim.bus.zmq_transport import DealerLink, RouterTransport, default_endpoint


def test_router_dealer_exchange_many_messages_both_ways_concurrently() -> None:
    n = 2000

    async def main() -> None:
        endpoint, folder = default_endpoint("ipc")
        router = RouterTransport(endpoint)
        dealers = [DealerLink(router.endpoint, f"d{i}") for i in range(3)]
        received: dict[bytes, list[int]] = {}
        echoed: dict[int, list[int]] = {i: [] for i in range(3)}

        async def serve() -> None:
            for _ in range(n * 3):
                ident, frame = await router.recv()
                received.setdefault(ident, []).append(int(frame))
                await router.send(ident, frame)

        async def client(i: int) -> None:
            d = dealers[i]

            async def sender() -> None:
                for k in range(n):
                    await d.send(str(k).encode())

            async def receiver() -> None:
                for _ in range(n):
                    echoed[i].append(int(await d.recv()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                nursery.start_soon(receiver)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                for i in range(3):
                    nursery.start_soon(client, i)
        for i in range(3):
            assert received[f"d{i}".encode()] == list(range(n))
            assert echoed[i] == list(range(n))
        for d in dealers:
            d.close()
        router.close()
        assert folder is not None
        shutil.rmtree(folder)

    trio.run(main)


def test_sending_to_an_unknown_identity_is_undeliverable() -> None:
    from agentsim.bus.broker import Undeliverable

    async def main() -> None:
        router = RouterTransport("tcp://127.0.0.1:*")
        assert router.endpoint.startswith("tcp://127.0.0.1:")
        try:
            router.send_nowait(b"nobody", b"x")
        except Undeliverable:
            pass
        else:
            raise AssertionError("expected Undeliverable")
        router.close()

    trio.run(main)


def test_default_bind_is_private_ipc() -> None:
    endpoint, d = default_endpoint("ipc")
    assert endpoint.startswith("ipc://") and d is not None
    import os
    import stat

    try:
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
        assert zmq.has("ipc")
    finally:
        shutil.rmtree(d)
