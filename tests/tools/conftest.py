"""Fixtures for the python tool's tests: host-side listeners and secrets a snippet must miss."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentsim.tools.python import osbox


class Listener:
    """A host socket that records every connection made to it."""

    def __init__(self, family: socket.AddressFamily, address: str | tuple[str, int]) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def tcp_listener() -> Iterator[Listener]:
    """A TCP server on the host's loopback."""
    server = Listener(socket.AF_INET, ("127.0.0.1", 0))
    yield server
    server.close()


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    """A Unix socket in the host's abstract namespace (bound to the network namespace)."""
    server = Listener(socket.AF_UNIX, f"\0agentsim-test-{secrets.token_hex(6)}")
    yield server
    server.close()


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A host file holding a random token that no snippet may read."""
    path = tmp_path / "secret.txt"
    path.write_text(f"TOKEN-{secrets.token_hex(12)}")
    return path


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    """Forget the cached isolation probe before and after (for tests that break the host)."""
    osbox._probe.cache_clear()
    yield
    osbox._probe.cache_clear()


@pytest.fixture
def host_pids_with() -> Callable[[str], list[int]]:
    """Host pids whose command line contains a marker (a snippet's leftover processes)."""
    return _pids_with


def _pids_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found
