"""The journal: every envelope and event of a run, in broker order, one JSON object a line.

Lines are structlog-style (``{"event": name, "t": seconds since start, ...}``). The file is
append-only, flushed per batch of events, and fsynced at each task end and at close, so a run
killed at any moment leaves a journal that ``agentsim report`` can read. The fsync at a task
end (``sync_soon``) runs on a helper thread: the data is already in the kernel once flushed
(a killed runner loses nothing), and the run's event loop does not stall on the disk.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from agentsim.failures import Failure
from agentsim.wire import Envelope, body_kind

_enc = msgspec.json.Encoder()


def envelope_record(env: Envelope, size: int) -> dict[str, Any]:
    """How an envelope appears in the journal (the body keeps its wire tag as ``type``)."""
    return {
        "msg_id": env.msg_id,
        "seq": env.seq,
        "src": env.src,
        "dst": env.dst,
        "kind": body_kind(env.body),
        "task_id": env.task_id,
        "round": env.round,
        "sent_at": env.sent_at,
        "bytes": size,
        "body": env.body,
    }


class _EnvelopeLine(msgspec.Struct):
    """An ``envelope`` journal line, encoded straight from a Struct (the hot path)."""

    event: str
    t: float
    dir: str
    msg_id: str
    seq: int
    src: str
    dst: str
    kind: str
    task_id: str
    round: int
    sent_at: int
    bytes: int
    body: Any


class Journal:
    """Writes journal lines; ``t`` is seconds since the journal was opened."""

    def __init__(
        self, path: Path, *, flush_every: int = 64, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self._fh: IO[bytes] = open(path, "ab")  # noqa: SIM115 - closed in close()
        self._clock = clock
        self._t0: float | None = None
        self._pending = 0
        self._flush_every = flush_every
        self.count = 0
        self.closed = False
        self._traffic: dict[str, list[int]] = {}
        self._syncer: threading.Thread | None = None
        self._sync_wanted = threading.Event()
        self._sync_stop = False

    def now(self) -> float:
        """Seconds since the first event, on the journal's clock (trio's, in a run)."""
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        return round(now - self._t0, 6)

    def write(self, event: str, **fields: Any) -> None:
        if self.closed:
            return
        record = {"event": event, "t": self.now(), **fields}
        self._fh.write(_enc.encode(record) + b"\n")
        self.count += 1
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def envelope(self, env: Envelope, size: int, *, direction: str) -> None:
        if self.closed:
            return
        line = _EnvelopeLine(
            "envelope", self.now(), direction, env.msg_id, env.seq, env.src, env.dst,
            body_kind(env.body), env.task_id, env.round, env.sent_at, size, env.body,
        )  # fmt: skip
        self._fh.write(_enc.encode(line) + b"\n")
        self.count += 1
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()
        tally = self._traffic.setdefault(env.task_id, [0, 0])
        tally[0] += 1
        tally[1] += size

    def task_traffic(self, task_id: str) -> tuple[int, int]:
        """Messages and bytes journaled so far for one task."""
        msgs, nbytes = self._traffic.get(task_id, (0, 0))
        return msgs, nbytes

    def failure(self, failure: Failure) -> None:
        self.write("failure", **msgspec.to_builtins(failure))

    def flush(self) -> None:
        if not self.closed:
            self._fh.flush()
            self._pending = 0

    def sync(self) -> None:
        """Flush and fsync now."""
        if not self.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._pending = 0

    def sync_soon(self) -> None:
        """Flush now and fsync on the helper thread (called at every task end); requests
        made while one fsync runs are served by the next."""
        if self.closed:
            return
        self._fh.flush()
        self._pending = 0
        if self._syncer is None:
            self._syncer = threading.Thread(
                target=self._sync_loop, name="journal-fsync", daemon=True
            )
            self._syncer.start()
        self._sync_wanted.set()

    def _sync_loop(self) -> None:
        fd = self._fh.fileno()
        while True:
            self._sync_wanted.wait()
            self._sync_wanted.clear()
            if self._sync_stop:
                return
            with contextlib.suppress(OSError):
                os.fsync(fd)

    def close(self) -> None:
        if not self.closed:
            if self._syncer is not None:
                self._sync_stop = True
                self._sync_wanted.set()
                self._syncer.join()
            self.sync()
            self._fh.close()
            self.closed = True


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Yield journal records; a torn last line (killed writer) is skipped, not fatal."""
    dec = msgspec.json.Decoder()
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = dec.decode(line)
            except msgspec.DecodeError:
                continue
            if isinstance(rec, dict):
                yield rec
