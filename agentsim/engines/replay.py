"""The ``replay`` engine: answers with the completions an agent gave in an earlier run.

Options (``agentsim.engines.options.ReplayOptions``): ``journal`` (the earlier run's
``journal.jsonl``), ``agent`` (whose replies to replay), ``tools`` (``"replay"``: the agent
answers tool calls from the journal too), ``pace`` (take as long as the recorded engine did,
so that timing-dependent faults fall the same way) and ``fallback`` (an engine config for
requests the journal does not hold — a fork).

Each recorded reply is keyed by the digest of the request its engine saw; the same request
gets the same completion back (in recorded order when it repeats). A request the earlier run
never made — the run has diverged — goes to the fallback engine when there is one, else it is
an ``engine_error`` naming the digest, so the divergence shows in the new run's failures.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from pathlib import Path

import msgspec

from agentsim.chat import ChatRequest, Completion, EngineInfo, request_hash
from agentsim.engines.base import Engine, EngineConfig, EngineError, EngineUnavailable
from agentsim.engines.options import OptionsError, ReplayOptions, decode_options
from agentsim.journal import read_journal


class ReplayEngine:
    def __init__(self, config: EngineConfig) -> None:
        t0 = time.perf_counter()
        try:
            self.options = decode_options(config.options, ReplayOptions)
        except OptionsError as e:
            raise EngineUnavailable(f"replay: {e}") from None
        path = Path(self.options.journal)
        self.agent = self.options.agent
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
        self.count = count
        self.replayed = 0
        self.virtual = False  # in simulation the agent sleeps ``last_latency`` on trio's clock
        self.last_latency = 0.0
        self._fallback: Engine | None = None
        self._load_s = time.perf_counter() - t0

    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="replay",
            model=self.model,
            load_s=self._load_s,
            extra={"recorded": str(self.count)},
        )

    def _fallback_engine(self) -> Engine:
        if self._fallback is None:
            from agentsim.engines import make_engine

            assert self.options.fallback is not None
            self._fallback = make_engine(msgspec.convert(self.options.fallback, EngineConfig))
        return self._fallback

    def chat(self, request: ChatRequest) -> Completion:
        key = request_hash(request)
        queue = self.recorded.get(key)
        if not queue:
            self.last_latency = 0.0
            if self.options.fallback is not None:
                return self._fallback_engine().chat(request)
            raise EngineError(
                f"replay: no recorded completion for request {key} (the run diverged)"
            )
        completion = queue.popleft()
        self.replayed += 1
        took = completion.timings.prefill_s + completion.timings.decode_s
        self.last_latency = took if self.options.pace else 0.0
        if self.last_latency > 0 and not self.virtual:
            time.sleep(self.last_latency)
        return completion

    def close(self) -> None:
        self.recorded.clear()
        if self._fallback is not None:
            self._fallback.close()
