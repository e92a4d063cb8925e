"""Tokenizers rebuilt from GGUF metadata, token for token against references.

References: ``spm_reference.py`` (llama.cpp's SentencePiece algorithm in Python, always run)
and llama.cpp itself through llama-cpp-python reading the same GGUF with ``vocab_only``
(skipped when it is not installed). Vocabularies: tiny ones written here, and the real
SmolLM2 (BPE) and Gemma 3 (SentencePiece, 262k) files when the shared cache has them.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import gguf
import platformdirs
import pytest
from conftest_shared import SHARED_CACHE
from hypothesis import given, settings
from hypothesis import strategies as st
from spm_reference import SpmReference
from tiny_gguf import _byte_chars, spm_vocab

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc.gguf_file import GGUFModel
from agentsim.engines.mlc.tokenizer import SUPPORTED_PRE, build_tokenizer, spm_merges

SAMPLE = [
    "The capital of France is Paris.",
    "  leading spaces,   runs of   spaces and a trailing one ",
    "tabs\tand\nnewlines\n\n\nthree\r\nwindows",
    "Ünïcödé: ñ café naïve résumé Ærøskøbing",
    "中文文本测试，包括标点。日本語のテキスト、カタカナ。한국어 문장입니다.",
    "Emoji 😀🎉👍🏽 and symbols ©®™ ∑∫√ ≠≤≥ ½",
    "Numbers 1234567890 3.14159 -42 1e-5 0x1F 2024-01-31 12:30",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>",
    "don't can't won't I'm you're they've we'll he'd IT'S",
    "CamelCaseWords HTTPServer URLs like https://example.com/a/b?q=1&x=2#frag",
    "def f(x):\n    return x ** 2  # comment\n\n\tif x:\n\t\tpass",
    "Zero\u200bwidth joiner and non\u00a0breaking space",
    "Mixed ÀÉÎÕÜ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ",
    "Русский текст и Ελληνικά, עברית ועربية, हिन्दी पाठ",
    "the of and to in is was he for it with as his on be at by",
    '{"name": "calc", "arguments": {"a": 12, "b": [1, 2, 3]}}',
    "",
    " ",
    "a",
]


def _fields(model: GGUFModel) -> dict[str, Any]:
    return {k: model.field(k) for k in model.reader.fields if k.startswith("tokenizer.ggml.")}


def _spm_fields(add_space_prefix: bool, size: int = 700) -> dict[str, Any]:
    tokens, scores, types = spm_vocab(size)
    # a few user-defined and control pieces, as Gemma's vocabulary has
    for i, (t, ty) in enumerate(
        [("<start_of_turn>", 3), ("<end_of_turn>", 3), ("\n", 4), ("  ", 4)]
    ):
        tokens[size - 1 - i], types[size - 1 - i], scores[size - 1 - i] = t, ty, -1000.0
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_space_prefix": add_space_prefix,
    }


def _reference(fields: dict[str, Any]) -> SpmReference:
    prefix = fields.get("tokenizer.ggml.add_space_prefix")
    return SpmReference(
        list(fields["tokenizer.ggml.tokens"]),
        [float(s) for s in fields["tokenizer.ggml.scores"]],
        [int(t) for t in fields["tokenizer.ggml.token_type"]],
        True if prefix is None else bool(prefix),
    )


@pytest.mark.parametrize("prefix", [True, False])
def test_sentencepiece_matches_the_python_reference_on_the_sample(prefix: bool) -> None:
    fields = _spm_fields(prefix)
    tok, ref = build_tokenizer(fields), _reference(fields)
    for text in SAMPLE:
        assert tok.encode(text, add_special_tokens=False).ids == ref.encode(text), text


_SPM = _spm_fields(True)
_SPM_TOK, _SPM_REF = build_tokenizer(_SPM), _reference(_SPM)
_PIECES = [*"theofandwsi ▁\n\tÜé中😀<>_", "<end_of_turn>", "  ", "<start_of_turn>"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_sentencepiece_matches_the_python_reference_on_random_text(text: str) -> None:
    assert _SPM_TOK.encode(text, add_special_tokens=False).ids == _SPM_REF.encode(text)


def test_sentencepiece_merges_follow_the_merged_piece_score() -> None:
    tokens = ["<unk>", "a", "b", "c", "ab", "bc", "abc"]
    scores = [0.0, -1, -2, -3, -10, -5, -4]
    merges = spm_merges(tokens, scores, [2, 1, 1, 1, 1, 1, 1])
    # "abc" (score -4) first, from either split; then "bc" (-5) before "ab" (-10)
    assert merges[:2] == [("a", "bc"), ("ab", "c")]
    assert merges[2:] == [("b", "c"), ("a", "b")]


@pytest.mark.parametrize("prefix", [True, False])
def test_sentencepiece_decodes_what_it_encodes(prefix: bool) -> None:
    tok = build_tokenizer(_spm_fields(prefix))
    specials = ("<start_of_turn>", "<end_of_turn>", "\n", "  ")
    for text in SAMPLE:
        if prefix and (text.startswith(" ") or any(s in text for s in specials)):
            continue  # llama.cpp too puts the prefix space back after each special token
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == text


def test_unknown_pre_tokenizer_and_model_are_one_line() -> None:
    fields = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "chatglm-bpe",
        "tokenizer.ggml.tokens": ["a"],
        "tokenizer.ggml.merges": [],
    }
    with pytest.raises(
        EngineUnavailable,
        match=r"tokenizer.ggml.pre .chatglm-bpe. is not supported; supported: default, gpt-2",
    ):
        build_tokenizer(fields)
    with pytest.raises(EngineUnavailable, match=r"tokenizer model 'rwkv' is not supported"):
        build_tokenizer({**fields, "tokenizer.ggml.model": "rwkv"})


# --- against llama.cpp --------------------------------------------------------------------

#: every pre-tokenizer the engine supports (llama.cpp names)
PRE_TOKENIZERS = list(SUPPORTED_PRE)


def _bpe_vocab(size: int = 900) -> tuple[list[str], list[str]]:
    """A byte-level BPE vocabulary trained on SAMPLE without pre-splitting, so that merges
    cross the boundaries the pre-tokenizers draw (digits, spaces, punctuation)."""
    chars = _byte_chars()
    words = [[chars[b] for b in t.encode()] for t in SAMPLE * 3]
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *chars]
    merges: list[str] = []
    known = set(tokens)
    while len(tokens) < size:
        pairs = collections.Counter((w[i], w[i + 1]) for w in words for i in range(len(w) - 1))
        if not pairs:
            break
        (a, b), _ = pairs.most_common(1)[0]
        merges.append(f"{a} {b}")
        if a + b not in known:
            known.add(a + b)
            tokens.append(a + b)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i : i + 2] = [a + b]
                i += 1
    return tokens, merges


def _write_vocab_gguf(path: Path, fields: dict[str, Any]) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_feed_forward_length(32)
    w.add_head_count(1)
    for key, value in fields.items():
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        elif isinstance(value, str):
            w.add_string(key, value)
        else:
            w.add_array(key, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _llama_cpp(path: Path) -> Any:
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    return llama_cpp.Llama(str(path), vocab_only=True, verbose=False)


def _agreement(llm: Any, tok: Any, texts: list[str]) -> list[str]:
    """The texts on which our tokenizer and llama.cpp's disagree."""
    bad = []
    for text in texts:
        want = llm.tokenize(text.encode(), add_bos=False, special=True)
        if tok.encode(text, add_special_tokens=False).ids != want:
            bad.append(text)
    return bad


@pytest.mark.parametrize("pre", PRE_TOKENIZERS)
def test_byte_level_bpe_matches_llama_cpp(pre: str, tmp_path: Path) -> None:
    tokens, merges = _bpe_vocab()
    fields = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3, 3, 3] + [1] * (len(tokens) - 3),
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": 0,
        "tokenizer.ggml.eos_token_id": 0,
    }
    llm = _llama_cpp(_write_vocab_gguf(tmp_path / f"{pre}.gguf", fields))
    assert _agreement(llm, build_tokenizer(fields), SAMPLE) == []


@pytest.mark.parametrize("prefix", [True, False])
def test_sentencepiece_matches_llama_cpp(prefix: bool, tmp_path: Path) -> None:
    fields = {
        **_spm_fields(prefix),
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
    }
    llm = _llama_cpp(_write_vocab_gguf(tmp_path / "spm.gguf", fields))
    assert _agreement(llm, build_tokenizer(fields), SAMPLE) == []


def _shared_model(name: str) -> Path:
    from agentsim.engines.mlc.models import MODELS

    root = Path(SHARED_CACHE or platformdirs.user_cache_dir("agentsim"))
    path = root / "models" / name / MODELS[name].filename
    if not path.is_file():
        pytest.skip(f"{name} is not in the shared model cache")
    return path


@pytest.mark.model
@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma3-270m"])
def test_real_vocabularies_match_the_references(name: str, record_property: Any) -> None:
    model = GGUFModel(_shared_model(name))
    fields = _fields(model)
    tok = build_tokenizer(fields)
    texts = [*SAMPLE, Path(__file__).read_text()[:4000]]
    if fields["tokenizer.ggml.model"] == "llama":
        ref = _reference(fields)
        assert [
            t for t in texts if tok.encode(t, add_special_tokens=False).ids != ref.encode(t)
        ] == []
    llm = _llama_cpp(model.path)
    bad = _agreement(llm, tok, texts)
    record_property("llama_cpp_agreement", f"{len(texts) - len(bad)}/{len(texts)}")
    assert bad == []
