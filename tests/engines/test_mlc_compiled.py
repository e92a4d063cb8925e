"""The compiled model against the numpy reference of the same GGUF weights."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from tiny_gguf import TINY, TinySpec, write_tiny_gguf

from agentsim.engines.base import ContextOverflow, EngineUnavailable
from agentsim.engines.mlc.build import ensure_artifact
from agentsim.engines.mlc.convert import GGUFModel, unpermute_rows
from agentsim.engines.mlc.reference import ReferenceModel
from agentsim.engines.mlc.runtime import Runtime

TOL = 1e-3


def _ids(n: int, vocab: int, seed: int = 0) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(3, vocab, n)]


@pytest.mark.parametrize("name", list(TINY))
def test_logits_match_numpy_reference(
    name: str, tiny_ggufs: dict[str, Path], tiny_artifacts: dict[str, Path]
) -> None:
    ref = ReferenceModel(GGUFModel(tiny_ggufs[name]))
    rt = Runtime(tiny_artifacts[name], 2, prefill_chunk=64)
    ids = _ids(30, TINY[name].vocab)
    want = ref.logits(ids)
    got = rt.prefill(ids[:20])
    assert np.abs(got - want[19]).max() <= TOL
    for pos in range(20, 30):  # decode steps, one token at a time
        got = rt.decode(ids[pos])
        assert np.abs(got - want[pos]).max() <= TOL, f"position {pos}"
    assert np.abs(want).max() > 0.1  # the comparison is not vacuous


def test_chunked_prefill_equals_unchunked(tiny_artifacts: dict[str, Path]) -> None:
    art = tiny_artifacts["llama-q4_1-tied"]
    ids = _ids(100, 320, seed=3)
    whole = Runtime(art, 1, prefill_chunk=128).prefill(ids)
    chunked = Runtime(art, 1, prefill_chunk=7).prefill(ids)
    assert np.abs(whole - chunked).max() <= TOL


def test_popn_rollback_equals_fresh_prefill(tiny_artifacts: dict[str, Path]) -> None:
    art = tiny_artifacts["qwen2-q8_0-bias"]
    ids = _ids(40, 320, seed=4)
    rt = Runtime(art, 2, prefill_chunk=16)
    rt.prefill(ids)
    rt.popn(15)
    assert rt.seq_len == 25
    branch = [5, 6, 7]
    got = rt.prefill(branch)
    want = Runtime(art, 2, prefill_chunk=16).prefill(ids[:25] + branch)
    assert np.abs(got - want).max() <= TOL
    rt.reset()
    assert np.abs(rt.prefill(ids[:10]) - Runtime(art, 2).prefill(ids[:10])).max() <= TOL


def test_runtime_guards_context_and_token_ids(tiny_artifacts: dict[str, Path]) -> None:
    rt = Runtime(tiny_artifacts["llama-q4_1-tied"], 1, context_length=32)
    with pytest.raises(ContextOverflow) as info:
        rt.prefill(_ids(33, 320))
    assert (info.value.prompt_tokens, info.value.context_length) == (33, 32)
    with pytest.raises(Exception, match="outside the vocabulary of 320"):
        rt.prefill([1, 320])
    assert rt.seq_len == 0
    rt.prefill(_ids(32, 320))  # exactly full is fine
    with pytest.raises(ContextOverflow):
        rt.decode(5)


def test_unpermute_inverts_llama_cpp_permutation() -> None:
    heads, dim, cols = 3, 8, 5
    hf = np.arange(heads * dim * cols, dtype=np.float32).reshape(heads * dim, cols)
    # what llama.cpp's converter does to Q/K rows
    gg = hf.reshape(heads, 2, dim // 2, cols).swapaxes(1, 2).reshape(hf.shape)
    assert np.array_equal(unpermute_rows(gg, heads), hf)


def test_unsupported_architecture_is_named(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "falcon.gguf", TinySpec(arch="falcon", layers=1))
    with pytest.raises(
        EngineUnavailable, match=r"architecture 'falcon'.*supported: llama, qwen2, qwen3, gemma"
    ):
        ensure_artifact(path)


def test_unsupported_quant_type_is_named(tmp_path: Path) -> None:
    spec = TinySpec(layers=1, hidden=256, ffn=256, overrides={"blk.0.ffn_down.weight": "IQ2_XXS"})
    path = write_tiny_gguf(tmp_path / "iq2.gguf", spec)
    with pytest.raises(EngineUnavailable, match=r"blk.0.ffn_down.weight .* IQ2_XXS; .*Q4_K"):
        ensure_artifact(path)


def test_artifact_is_built_once_and_reused(
    tiny_ggufs: dict[str, Path], tiny_artifacts: dict[str, Path]
) -> None:
    art = tiny_artifacts["llama-q4_1-tied"]
    stamp = (art / "model.so").stat().st_mtime_ns
    assert ensure_artifact(tiny_ggufs["llama-q4_1-tied"]) == art
    assert (art / "model.so").stat().st_mtime_ns == stamp
    assert not list(art.parent.glob(".*.tmp"))


def test_tiny_writer_uses_the_requested_quant_types(tiny_ggufs: dict[str, Path]) -> None:
    r = gguf.GGUFReader(str(tiny_ggufs["llama-q4_0-mixed"]))
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types["blk.0.attn_v.weight"] == "Q8_0"
    assert types["blk.1.ffn_up.weight"] == "F16"
    assert types["blk.0.attn_q.weight"] == "Q4_0"


ENSURE = """
import sys
from pathlib import Path
from agentsim.engines.mlc.build import ensure_artifact
print("ARTIFACT", ensure_artifact(Path(sys.argv[1])))
"""


def test_agents_starting_together_compile_once(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    gguf_path = write_tiny_gguf(tmp_path / "shared.gguf", TinySpec(layers=1, seed=9))
    env = dict(os.environ, AGENTSIM_CACHE=str(tmp_path / "cache"))
    env.pop("TVM_USE_RUNTIME_LIB", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ENSURE, str(gguf_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    paths = {
        line.split()[1] for out in outs for line in out.splitlines() if line.startswith("ARTIFACT")
    }
    assert len(paths) == 1
    assert sum("mlc_artifact_built" in out for out in outs) == 1
    # the others waited on the lock (or, if they started late, found the artifact published)
    assert sum("mlc_artifact_shared" in out for out in outs) <= 2
    assert len(list((tmp_path / "cache" / "artifacts").iterdir())) == 2  # artifact + lock file
