"""Every supported architecture, compiled, against the numpy reference of the same weights.

One tiny GGUF per case (``families.py``), written with the real tensor names and metadata
keys; the "mixed" ones hold every weight type the kernels read. Sequences are long enough
to cross sliding windows and are fed as chunked prefill, then one token at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from families import CASES
from tiny_gguf import ALL_TYPES

from agentsim.engines.mlc.convert import GGUFModel, read_config
from agentsim.engines.mlc.reference import ReferenceModel
from agentsim.engines.mlc.runtime import Runtime

pytestmark = pytest.mark.slow

TOL = 1e-3


def _ids(n: int, vocab: int, seed: int = 0) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(3, vocab, n)]


def _compiled(art: Path, name: str, context: int | None = None) -> np.ndarray:
    """Logits at positions ``prefill-1 .. tokens-1``: chunked prefill, then decode steps."""
    case = CASES[name]
    ids = _ids(case.tokens, case.spec.vocab)
    rt = Runtime(art, 2, prefill_chunk=16, context_length=context or case.context)
    out = [rt.prefill(ids[: case.prefill])]
    out += [rt.decode(t) for t in ids[case.prefill :]]
    return np.stack(out)


def _reference(ref: ReferenceModel, name: str) -> np.ndarray:
    case = CASES[name]
    return ref.logits(_ids(case.tokens, case.spec.vocab))[case.prefill - 1 :]


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_logits_match_the_reference(
    name: str, family_ggufs: dict[str, Path], family_artifacts: dict[str, Path]
) -> None:
    case = CASES[name]
    model = GGUFModel(family_ggufs[name])
    if case.spec.mix:  # architecture x every weight type in one file
        assert set(model.quant_counts()) >= set(ALL_TYPES)
    ref = ReferenceModel(model, case.context)
    want, got = _reference(ref, name), _compiled(family_artifacts[name], name)
    assert np.abs(want).max() > 1.0  # the comparison is not vacuous
    assert np.abs(got - want).max() <= TOL


def test_sliding_window_is_exactly_the_window(
    family_ggufs: dict[str, Path], family_artifacts: dict[str, Path]
) -> None:
    """Positions past the window match only a reference with the same window size."""
    name = "gemma3-sliding"
    got = _compiled(family_artifacts["gemma3-sliding"], name)
    ref = ReferenceModel(GGUFModel(family_ggufs[name]), attn_softcap=False)
    window = ref.hp.n_swa
    assert window == 20 and CASES[name].tokens > 3 * window
    for wrong in (window - 1, window + 1):
        ref.hp.n_swa = wrong
        assert np.abs(got - _reference(ref, name)).max() > 20 * TOL, wrong


def test_local_layers_use_their_own_rope_base(
    family_ggufs: dict[str, Path], family_artifacts: dict[str, Path]
) -> None:
    name = "gemma3-sliding"
    cfg = read_config(GGUFModel(family_ggufs[name]))
    assert cfg.layer_kinds == ("local",) * 5 + ("global",)
    assert cfg.ropes["local"].inv_freq[1] == pytest.approx(10000 ** (-2 / 256))
    assert cfg.ropes["global"].inv_freq[1] == pytest.approx(1e6 ** (-2 / 256))
    ref = ReferenceModel(GGUFModel(family_ggufs[name]))
    ref.hp.base_swa = ref.hp.freq_base
    got = _compiled(family_artifacts[name], name)
    assert np.abs(got - _reference(ref, name)).max() > 20 * TOL


@pytest.mark.parametrize("context", [256, 512])
def test_longrope_factors_follow_the_kv_capacity(
    context: int, family_ggufs: dict[str, Path], family_artifacts: dict[str, Path]
) -> None:
    """Short factors up to the original context (256 here), long ones beyond, as llama.cpp."""
    name = "phi3-longrope"
    model = GGUFModel(family_ggufs[name])
    got = _compiled(family_artifacts[name], name, context)
    assert np.abs(got - _reference(ReferenceModel(model, context), name)).max() <= TOL
    other = 512 if context == 256 else 256
    assert np.abs(got - _reference(ReferenceModel(model, other), name)).max() > 20 * TOL


def test_gemma2_attention_softcap_matches_llama_cpp_semantics(
    family_ggufs: dict[str, Path], family_artifacts: dict[str, Path]
) -> None:
    """The cap (2.0 in the tiny file) changes the logits, and the kernels apply it."""
    name = "gemma2-sliding"
    model = GGUFModel(family_ggufs[name])
    got = _compiled(family_artifacts[name], name)
    uncapped = _reference(ReferenceModel(model, attn_softcap=False), name)
    assert np.abs(got - uncapped).max() > 20 * TOL  # the cap matters here
    ref = ReferenceModel(model, attn_softcap=True)
    assert np.abs(got - _reference(ref, name)).max() <= TOL


def test_rollback_past_the_window_equals_a_fresh_prefill(
    family_artifacts: dict[str, Path],
) -> None:
    """The engine reuses a cached prefix by popping tokens: that must hold for sliding layers."""
    art = family_artifacts["gemma3-sliding"]
    ids = _ids(64, 400, seed=5)
    rt = Runtime(art, 2, prefill_chunk=16)
    rt.prefill(ids)
    rt.popn(30)
    got = rt.prefill([7, 8, 9])
    want = Runtime(art, 2, prefill_chunk=16).prefill([*ids[:34], 7, 8, 9])
    assert np.abs(got - want).max() <= TOL
