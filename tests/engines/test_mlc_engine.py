"""MLCEngine end to end on a tiny random model: determinism, limits, stops, grammar."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentsim.chat import ChatMessage, ChatRequest, Sampling
from agentsim.engines import make_engine
from agentsim.engines.base import ContextOverflow, Engine, EngineConfig, EngineError
from agentsim.engines.mlc import MLCEngine


def _engine(path: Path, **kw: object) -> MLCEngine:
    opts = kw.pop("options", {})
    cfg = EngineConfig(engine="mlc", model=str(path), threads=1, options=opts, **kw)  # type: ignore[arg-type]
    eng = make_engine(cfg)
    assert isinstance(eng, MLCEngine)
    return eng


def _req(text: str, **sampling: object) -> ChatRequest:
    return ChatRequest(
        messages=[ChatMessage(role="user", content=text)],
        sampling=Sampling(**sampling),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def engine(tiny_ggufs: dict[str, Path], tiny_artifacts: dict[str, Path]) -> MLCEngine:
    return _engine(tiny_ggufs["llama-q4_1-tied"])


def test_engine_meets_the_protocol_and_reports_info(engine: MLCEngine) -> None:
    assert isinstance(engine, Engine)
    info = engine.info()
    assert (info.engine, info.threads, info.context_length) == ("mlc", 1, 512)
    assert info.extra["target"] == "llvm"


def test_greedy_output_is_stable_across_runs_and_engines(
    engine: MLCEngine, tiny_ggufs: dict[str, Path]
) -> None:
    first = engine.chat(_req("hello there", max_tokens=12))
    again = engine.chat(_req("hello there", max_tokens=12))
    other = _engine(tiny_ggufs["llama-q4_1-tied"]).chat(_req("hello there", max_tokens=12))
    assert first.token_ids == again.token_ids == other.token_ids
    assert first.usage.completion_tokens == len(first.token_ids) > 0
    assert first.usage.prompt_tokens > 5
    assert first.timings.prefill_s > 0
    assert first.timings.decode_s > 0


def test_seeded_sampling_is_reproducible(engine: MLCEngine) -> None:
    def run(seed: int) -> list[int]:
        req = _req("the tide", temperature=20.0, top_p=0.95, top_k=50, seed=seed, max_tokens=24)
        return engine.chat(req).token_ids

    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert a != c
    assert engine.chat(_req("the tide", temperature=1.5, seed=7, max_tokens=3)).seed == 7


def test_prefix_reuse_gives_the_same_tokens(tiny_ggufs: dict[str, Path], engine: MLCEngine) -> None:
    fresh = _engine(tiny_ggufs["llama-q4_1-tied"], options={"reuse_prefix": False})
    msgs = [ChatMessage(role="user", content="one two three")]
    r1 = engine.chat(ChatRequest(messages=msgs, sampling=Sampling(max_tokens=8)))
    longer = ChatRequest(
        messages=[
            *msgs,
            ChatMessage(role="assistant", content=r1.text),
            ChatMessage(role="user", content="four"),
        ],
        sampling=Sampling(max_tokens=8),
    )
    assert engine.chat(longer).token_ids == fresh.chat(longer).token_ids


def test_max_tokens_gives_finish_reason_length(engine: MLCEngine) -> None:
    out = engine.chat(_req("abc", max_tokens=5, repetition_penalty=1.3))
    if out.finish_reason == "length":
        assert out.usage.completion_tokens == 5
    else:  # the random model chose an end token early
        assert out.finish_reason == "stop"


def test_stop_string_truncates_text(engine: MLCEngine) -> None:
    full = engine.chat(_req("stop test", max_tokens=20))
    assert len(full.text) >= 3
    stop = full.text[1:3]
    cut = engine.chat(_req("stop test", max_tokens=20, stop=[stop]))
    assert cut.finish_reason == "stop"
    assert stop not in cut.text
    assert full.text.startswith(cut.text)


def test_context_overflow_raises_and_engine_survives(tiny_ggufs: dict[str, Path]) -> None:
    eng = _engine(tiny_ggufs["llama-q4_1-tied"], options={"context_length": 64})
    with pytest.raises(ContextOverflow) as info:
        eng.chat(_req("word " * 80))
    assert info.value.context_length == 64
    out = eng.chat(_req("hi", max_tokens=200))
    assert out.finish_reason in ("length", "stop")
    assert out.usage.prompt_tokens + out.usage.completion_tokens <= 64


def test_bad_max_tokens_is_an_engine_error(engine: MLCEngine) -> None:
    with pytest.raises(EngineError, match="max_tokens must be > 0, got 0"):
        engine.chat(_req("x", max_tokens=0))


def test_constrained_decoding_follows_the_json_schema(tiny_ggufs: dict[str, Path]) -> None:
    eng = _engine(tiny_ggufs["llama-q4_1-tied"], constrained=True)
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": 4}, "ok": {"type": "boolean"}},
        "required": ["answer", "ok"],
        "additionalProperties": False,
    }
    req = ChatRequest(
        messages=[ChatMessage(role="user", content="json please")],
        sampling=Sampling(temperature=1.0, seed=3, max_tokens=60),
        response_schema=schema,
    )
    out = eng.chat(req)
    assert out.finish_reason == "stop", out.text
    obj = json.loads(out.text)
    assert set(obj) == {"answer", "ok"}
    assert isinstance(obj["ok"], bool)
    assert len(obj["answer"]) <= 4


_DECODE_UNDER_STRACE = r"""
import sys
from pathlib import Path
from agentsim.engines.mlc.runtime import Runtime
rt = Runtime(Path(sys.argv[1]), 1, context_length=64)
logits = rt.prefill([1, 2, 3])
for _ in range(20):
    logits = rt.decode(int(logits.argmax()))
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_decode_does_not_ask_the_os_for_the_core_count_per_kernel(
    tiny_artifacts: dict[str, Path], tmp_path: Path
) -> None:
    # Without TVM_NUM_THREADS every parallel kernel made glibc open /sys/.../cpu/online
    # (TVM's MaxConcurrency -> std::thread::hardware_concurrency): hundreds per token.
    env = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    log = tmp_path / "strace.log"
    art = tiny_artifacts["llama-q4_1-tied"]
    cmd = ["strace", "-f", "-e", "trace=openat", "-o", str(log), sys.executable, "-c"]
    subprocess.run([*cmd, _DECODE_UNDER_STRACE, str(art)], env=env, check=True, timeout=300)
    opens = log.read_text().count("/sys/devices/system/cpu/online")
    assert opens < 10, f"{opens} opens of /sys/devices/system/cpu/online for 20 tokens"


def test_setting_threads_tells_tvm_the_pool_size() -> None:
    code = (
        "import os; from agentsim.engines.mlc.tvm_api import tvm_api; "
        "tvm_api('cpu').set_threads(2); print(os.environ['TVM_NUM_THREADS'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "2"
