"""Shared weights: engines of one artifact use one memory-mapped copy of the weights, keep
their own KV caches, and answer exactly as engines with private copies do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentsim.chat import ChatMessage, ChatRequest, Sampling
from agentsim.engines import EngineConfig, make_engine
from agentsim.engines.mlc import MLCEngine
from agentsim.engines.mlc.model_files import WEIGHTS_FILE

PROMPTS = ["hello there", "the tide comes in", "a b c d e f", "hello there, again"]


def _engine(path: Path, *, share: bool) -> MLCEngine:
    cfg = EngineConfig(engine="mlc", model=str(path), threads=1, options={"share_weights": share})
    eng = make_engine(cfg)
    assert isinstance(eng, MLCEngine)
    return eng


def _ask(eng: MLCEngine, history: list[ChatMessage], text: str) -> list[int]:
    """One turn of a conversation: the prompt extends the last (the KV cache is reused)."""
    history.append(ChatMessage(role="user", content=text))
    out = eng.chat(ChatRequest(messages=list(history), sampling=Sampling(max_tokens=10)))
    history.append(ChatMessage(role="assistant", content=out.text))
    return out.token_ids


@pytest.mark.parametrize("name", ["llama-q4_1-tied", "qwen2-q8_0-bias"])
def test_engines_sharing_weights_answer_as_engines_with_their_own_copy(
    name: str, tiny_ggufs: dict[str, Path], tiny_artifacts: dict[str, Path]
) -> None:
    a, b = _engine(tiny_ggufs[name], share=True), _engine(tiny_ggufs[name], share=True)
    solo_a, solo_b = _engine(tiny_ggufs[name], share=False), _engine(tiny_ggufs[name], share=False)

    # one set of weight tensors, inside the memory map of the artifact's weights.bin
    assert a.rt.params is b.rt.params and a.rt.art.mapped
    mapping = a.rt.art.weights
    assert mapping is not None and Path(mapping.filename) == tiny_artifacts[name] / WEIGHTS_FILE
    lo, hi = mapping.ctypes.data, mapping.ctypes.data + mapping.nbytes
    assert all(lo <= p.data_ptr() < hi for p in a.rt.params)
    # the private copies are elsewhere, and each engine has its own KV cache
    assert not solo_a.rt.art.mapped and solo_a.rt.params is not solo_b.rt.params
    assert all(not lo <= p.data_ptr() < hi for p in solo_a.rt.params)
    assert len({id(e.rt.kv) for e in (a, b, solo_a, solo_b)}) == 4

    # two conversations interleaved turn by turn on the sharing engines, and the same two
    # conversations on the engines with their own copies: the same tokens, turn for turn
    ha: list[ChatMessage] = []
    hb: list[ChatMessage] = []
    hsa: list[ChatMessage] = []
    hsb: list[ChatMessage] = []
    for i, text in enumerate(PROMPTS):
        other = PROMPTS[-1 - i]
        shared = (_ask(a, ha, text), _ask(b, hb, other))
        own = (_ask(solo_a, hsa, text), _ask(solo_b, hsb, other))
        assert shared == own, f"turn {i}"
        assert shared[0]


def test_shared_weights_give_the_same_logits_as_a_private_copy(
    tiny_ggufs: dict[str, Path], tiny_artifacts: dict[str, Path]
) -> None:
    shared = _engine(tiny_ggufs["llama-q4_1-tied"], share=True).rt
    own = _engine(tiny_ggufs["llama-q4_1-tied"], share=False).rt
    ids = list(range(3, 40))
    assert np.array_equal(shared.prefill(ids), own.prefill(ids))
    assert np.array_equal(shared.decode(7), own.decode(7))


def _pmd_mapped_kb(path: Path) -> int:
    """kB of ``path``'s mappings in this process that are mapped 2 MiB at a time."""
    smaps = Path("/proc/self/smaps").read_text().split("\n")
    total, inside = 0, False
    for line in smaps:
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
            inside = line.endswith(str(path))
        elif inside and line.startswith("FilePmdMapped:"):
            total += int(head[1])
    return total


def _huge_file_folios_work(tmp_path: Path) -> bool:
    """Whether this kernel and file system give a cold file mapped with MADV_HUGEPAGE 2 MiB
    folios at all (written, written back and dropped here by hand, not by the code under test)."""
    import ctypes
    import mmap as mmap_mod
    import os

    probe = tmp_path / "probe.bin"
    with probe.open("wb") as f:
        f.write(os.urandom(8 << 20))
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    with probe.open("rb") as f:
        m = mmap_mod.mmap(f.fileno(), 0, prot=mmap_mod.PROT_READ)
    try:
        m.madvise(mmap_mod.MADV_HUGEPAGE)
        view = np.frombuffer(m, np.uint8)
        int(view[::4096].sum())
        kb = _pmd_mapped_kb(probe)
        del view
    except (OSError, AttributeError, ctypes.ArgumentError):
        kb = 0
    finally:
        m.close()
    return kb > 0


def test_saved_weights_are_mapped_through_huge_pages(tmp_path: Path) -> None:
    """``save_weights`` leaves the file out of the page cache and ``map_weights`` asks for
    huge pages, so the first mapping faults the weights in 2 MiB folios (not the small
    ones the writes leave behind), which every later mapping shares."""
    if not Path("/proc/self/smaps").exists() or not _huge_file_folios_work(tmp_path):
        pytest.skip("this kernel or file system maps no file through 2 MiB pages")
    from agentsim.engines.mlc.model_files import map_weights, save_weights

    rng = np.random.default_rng(0)
    arrays = {f"w{i}": rng.integers(0, 255, 3 << 20, dtype=np.uint8) for i in range(8)}
    path = tmp_path / WEIGHTS_FILE
    save_weights(path, arrays)
    weights = map_weights(path)
    assert int(weights[::4096].sum()) > 0  # touch every page
    mapped = _pmd_mapped_kb(path) << 10
    # everything but the unaligned tail is mapped 2 MiB at a time
    assert mapped >= (weights.nbytes // (2 << 20) - 1) * (2 << 20), (mapped, weights.nbytes)
