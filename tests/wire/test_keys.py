"""A CURVE key is one identity: ``agentsim keys NAME`` binds the key to NAME, the ZAP handler
answers with that name, and every frame of the connection carries it as ``User-Id``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import zmq

from agentsim.bus.auth import (
    KeyFileError,
    ZapHandler,
    allowed_keys,
    create_keys,
    key_name,
    load_public,
    load_secret,
)
from agentsim.bus.zmq_transport import DealerLink, RouterTransport


def test_keys_command_binds_each_key_to_its_name(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "agentsim", "keys", "alice", "bob", "--dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    assert 'agent = "alice"' in (tmp_path / "alice.key").read_text()
    assert key_name(tmp_path / "bob.key_secret") == "bob"
    shutil.copy(tmp_path / "alice.key", tmp_path / "renamed-bob.key")  # the name is in the key
    allowed = allowed_keys([tmp_path / "renamed-bob.key", tmp_path / "bob.key"])
    assert sorted(allowed.values()) == ["alice", "bob"]
    assert allowed[load_public(tmp_path / "renamed-bob.key")] == "alice"


def test_one_key_bound_to_two_names_is_an_error_naming_both(tmp_path: Path) -> None:
    public, _ = create_keys(tmp_path, "alice")
    text = public.read_text().replace('"alice"', '"mallory"')
    (tmp_path / "mallory.key").write_text(text)
    with pytest.raises(
        KeyFileError, match=r"'alice' \(.*alice.key\) and 'mallory' \(.*mallory.key\)"
    ):
        allowed_keys([tmp_path])


def test_a_key_without_a_name_is_bound_to_its_file_name_and_the_runner_key_is_left_out(
    tmp_path: Path,
) -> None:
    zmq.auth.create_certificates(str(tmp_path), "carol")  # no metadata: an older key file
    create_keys(tmp_path, "runner")
    assert list(allowed_keys([tmp_path]).values()) == ["carol"]

    async def main() -> None:
        zap = ZapHandler(zmq.Context.instance(), {}, on_refused=lambda a, r: None)
        try:
            with pytest.raises(ValueError, match="no agent key may be bound to 'runner'"):
                zap.allow(b"x" * 40, "runner")
        finally:
            zap.close()

    trio.run(main)


def test_frames_carry_the_name_bound_to_the_key_whatever_the_socket_says(tmp_path: Path) -> None:
    create_keys(tmp_path, "runner")
    create_keys(tmp_path, "alice")
    create_keys(tmp_path / "other", "bob")  # not allowed
    server_public, server_secret = load_secret(tmp_path / "runner.key_secret")
    refusals: list[tuple[str, str]] = []

    async def main() -> list[tuple[bytes, bytes]]:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        zap = ZapHandler(
            ctx, allowed_keys([tmp_path / "alice.key"]), on_refused=lambda *a: refusals.append(a)
        )
        router = RouterTransport("tcp://127.0.0.1:*", context=ctx, curve_secret=server_secret)
        links = []
        for name, key in (
            ("bob", tmp_path / "alice.key_secret"),
            ("bob", tmp_path / "other" / "bob.key_secret"),
        ):
            public, secret = load_secret(key)
            links.append(DealerLink(router.endpoint, name, curve=(public, secret, server_public)))
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(zap.serve)
                await links[0].send(b"hi from alice's key")
                await links[1].send(b"hi from a key nobody allowed")
                with trio.fail_after(10):
                    got = [await router.recv()]
                    while not refusals:  # noqa: ASYNC110 - the ZAP callback fills it
                        await trio.sleep(0.01)
                # the runner answers by name: the frame reaches the socket alice's key opened
                await router.send(b"alice", b"for alice")
                with trio.fail_after(10):
                    assert await links[0].recv() == b"for alice"
                nursery.cancel_scope.cancel()
        finally:
            for link in links:
                link.close()
            router.close()
            zap.close()
        return got

    assert trio.run(main) == [(b"alice", b"hi from alice's key")]
    assert len(refusals) == 1 and refusals[0][1].startswith("unknown public key")
