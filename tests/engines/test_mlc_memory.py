"""The memory estimate and the one-line refusal before a model that would not fit loads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentsim.engines.base import EngineConfig, EngineUnavailable
from agentsim.engines.mlc.config import PAGE_SIZE, ModelConfig
from agentsim.engines.mlc.engine import MLCEngine
from agentsim.engines.mlc.memory import RUNTIME_OVERHEAD, estimate, kv_cache_bytes, parse_size


def _cfg(path: Path) -> ModelConfig:
    import agentsim.engines.mlc.compile  # noqa: F401  (the families need the compiler)
    from agentsim.engines.mlc.convert import GGUFModel, read_config

    return read_config(GGUFModel(path))


def test_kv_cache_is_every_layer_k_and_v_for_the_whole_context(
    family_ggufs: dict[str, Path],
) -> None:
    cfg = _cfg(family_ggufs["gemma3-sliding"])  # 6 layers, 1 KV head of 256
    pages = 1000 // PAGE_SIZE + 1 + 1
    assert kv_cache_bytes(cfg, 1000) == 6 * 2 * pages * PAGE_SIZE * 1 * 256 * 4
    # all layers sliding: the cache gets one extra layer (see blocks.CausalLM)
    mistral = _cfg(family_ggufs["mistral-sliding"])
    assert kv_cache_bytes(mistral, 64) == (2 + 1) * 2 * 5 * PAGE_SIZE * 2 * 32 * 4
    est = estimate(cfg, 10 << 20, 1000, 64)
    assert est.total_bytes == (10 << 20) + est.kv_cache_bytes + est.scratch_bytes + RUNTIME_OVERHEAD


def _engine(path: Path, **options: object) -> MLCEngine:
    return MLCEngine(EngineConfig(engine="mlc", model=str(path), threads=1, options=options))


def test_engine_refuses_in_one_line_when_memory_is_short(
    tiny_ggufs: dict[str, Path], tiny_artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tiny_ggufs["llama-q4_1-tied"]
    # 2 layers x 2 KV heads x 32: 16 KiB of KV cache per 1024 tokens; room for ~1M tokens
    monkeypatch.setenv("AGENTSIM_MEMORY_LIMIT", f"{(RUNTIME_OVERHEAD >> 20) + 20}M")
    eng = _engine(path, context_length=512)
    assert int(eng.info().extra["memory_estimate_mb"]) < (RUNTIME_OVERHEAD >> 20) + 20
    eng.close()
    with pytest.raises(EngineUnavailable) as info:
        _engine(path, context_length=4_000_000)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"model {path} needs ~" in msg and "for context_length 4000000" in msg
    assert "MiB is available; lower options.context_length" in msg


def test_a_model_file_bigger_than_memory_is_refused_before_it_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.gguf"
    with big.open("wb") as f:
        f.truncate(300 << 20)  # sparse: 300 MiB of "weights"
    monkeypatch.setenv("AGENTSIM_MEMORY_LIMIT", "256M")
    with pytest.raises(EngineUnavailable, match=r"big.gguf, 300 MiB of weights\) needs more than"):
        _engine(big)


def test_memory_limit_override_is_checked() -> None:
    assert parse_size("512M", "X") == 512 << 20
    assert parse_size("2GiB", "X") == 2 << 30
    assert parse_size("1000", "X") == 1000
    with pytest.raises(EngineUnavailable, match=r"X must be a size like 512M or 8G, got 'lots'"):
        parse_size("lots", "X")


SCENARIO = """
[run]
name = "short-memory"
seed = 0
[tasks]
suite = "gsm8k"
limit = 1
[agents.solver]
engine = "mlc"
model = "{model}"
max_tokens = 8
[protocol]
kind = "solo"
deadline_s = 120
"""


@pytest.mark.slow
def test_an_agent_that_would_not_fit_is_recorded_not_killed(
    tiny_ggufs: dict[str, Path], tiny_artifacts: dict[str, Path], tmp_path: Path
) -> None:
    f = tmp_path / "s.toml"
    f.write_text(SCENARIO.format(model=tiny_ggufs["llama-q4_1-tied"]))
    env = dict(os.environ, AGENTSIM_MEMORY_LIMIT="60M")
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", str(f), "--out", str(tmp_path / "runs"), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == 1, p.stderr
    (run,) = (tmp_path / "runs").iterdir()
    events = [json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines()]
    failed = [e for e in events if e["event"] == "agent_load_failed"]
    assert len(failed) == 1
    assert re.search(r"needs .* 60 MiB (is )?available", failed[0]["detail"]), failed[0]
    assert "engine failed to load: model" in p.stderr
