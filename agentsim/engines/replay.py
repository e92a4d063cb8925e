"""The ``replay`` engine: answers with the completions an agent gave in an earlier run.

Options: ``journal`` (path to the earlier run's ``journal.jsonl``) and ``agent`` (whose
replies to replay). Each recorded reply is keyed by the digest of the request its engine saw;
the same request gets the same completion back (in recorded order when it repeats). A request
the earlier run never made — the run has diverged, e.g. under other faults — is an
``engine_error`` naming the digest, so the divergence shows in the new run's failures.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from pathlib import Path

import msgspec

from agentsim.chat import ChatRequest, Completion, EngineInfo, request_hash
from agentsim.engines.base import EngineConfig, EngineError, EngineUnavailable
from agentsim.journal import read_journal


class ReplayEngine:
    def __init__(self, config: EngineConfig) -> None:
        t0 = time.perf_counter()
        journal = config.options.get("journal")
        self.agent = str(config.options.get("agent", ""))
        if not journal or not self.agent:
            raise EngineUnavailable("replay engine needs options.journal and options.agent")
        path = Path(str(journal))
        if not path.is_file():
            raise EngineUnavailable(f"replay journal not found: {path}")
        self.model = str(config.model)
        self.recorded: dict[str, deque[Completion]] = defaultdict(deque)
        count = 0
        for rec in read_journal(path):
            if (
                rec.get("event") != "envelope"
                or rec.get("kind") != "reply"
                or rec.get("src") != self.agent
            ):
                continue
            body = rec.get("body", {})
            key = str(body.get("request_hash", ""))
            self.recorded[key].append(msgspec.convert(body["completion"], Completion))
            count += 1
        if count == 0:
            raise EngineUnavailable(f"replay journal {path} holds no reply from {self.agent!r}")
        self.count = count
        self._load_s = time.perf_counter() - t0

    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="replay",
            model=self.model,
            load_s=self._load_s,
            extra={"recorded": str(self.count)},
        )

    def chat(self, request: ChatRequest) -> Completion:
        key = request_hash(request)
        queue = self.recorded.get(key)
        if not queue:
            raise EngineError(
                f"replay: no recorded completion for request {key} (the run diverged)"
            )
        return queue.popleft()

    def close(self) -> None:
        self.recorded.clear()
