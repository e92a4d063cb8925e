"""Build a Hugging Face ``tokenizers`` tokenizer from GGUF ``tokenizer.ggml.*`` metadata.

Both vocabulary kinds are rebuilt to tokenize as llama.cpp does (the de-facto meaning of a
GGUF file; the tests check token for token against it):

- ``gpt2`` (byte-level BPE): vocabulary, merges, the split regexes llama.cpp uses for
  ``tokenizer.ggml.pre`` (``default`` when the file names none).
- ``llama`` (SentencePiece, e.g. Llama 2, Mistral, Gemma, Phi-3): llama.cpp merges adjacent
  pieces greedily, the pair whose merged piece has the highest score first. That is BPE with
  merges ranked by the merged piece's score, over the whole text, with ``<0xXX>`` byte
  fallback for characters not in the vocabulary; spaces become ``▁`` and one is prepended
  when ``add_space_prefix`` is set (llama.cpp's default for SentencePiece vocabularies).
Control and user-defined tokens are matched in the raw text first, as llama.cpp does.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

from agentsim.engines.base import EngineUnavailable

_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6

# Split patterns of the pre-tokenizers llama.cpp names, as llama.cpp applies them (for
# gpt-4o and tekken its ASCII-class rewrite of the upstream Unicode-case regexes).
_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_QWEN2 = (
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3 = (
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_UP = r"((?=[\p{L}])([^a-z]))"
_LO = r"((?=[\p{L}])([^A-Z]))"
_GPT4O = (
    rf"[^\r\n\p{{L}}\p{{N}}]?{_UP}*{_LO}+{_CONTRACTIONS}?"
    rf"|[^\r\n\p{{L}}\p{{N}}]?{_UP}+{_LO}*{_CONTRACTIONS}?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TEKKEN = (
    rf"[^\r\n\p{{L}}\p{{N}}]?{_UP}*{_LO}+|[^\r\n\p{{L}}\p{{N}}]?{_UP}+{_LO}*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
#: pre-tokenizer name → the regexes llama.cpp splits with, in order
_SPLITS: dict[str, tuple[str, ...]] = {
    "default": (r"[\p{P}\$\+<=>\^~\|]+", _GPT2_RE, r"\p{N}+", r"[0-9][0-9][0-9]"),
    "gpt-2": (_GPT2_RE,),
    "phi-2": (_GPT2_RE,),
    "smollm": (r"\p{N}", _GPT2_RE),
    "starcoder": (r"\p{N}", _GPT2_RE),
    "refact": (r"\p{N}", _GPT2_RE),
    "qwen2": (_QWEN2,),
    "deepseek-r1-qwen": (_QWEN2,),
    "llama3": (_LLAMA3,),
    "llama-v3": (_LLAMA3,),
    "llama-bpe": (_LLAMA3,),
    "gpt-4o": (_GPT4O,),
    "tekken": (_TEKKEN,),
}
SUPPORTED_PRE = tuple(_SPLITS)


def _byte_level_pre(pre: str) -> Any:
    splits = _SPLITS.get(pre)
    if splits is None:
        raise EngineUnavailable(
            f"GGUF tokenizer.ggml.pre {pre!r} is not supported; supported: "
            f"{', '.join(SUPPORTED_PRE)}"
        )
    steps = [pre_tokenizers.Split(Regex(p), behavior="isolated") for p in splits]
    return pre_tokenizers.Sequence(
        [*steps, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )


def spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """Every ``(left, right)`` whose concatenation is a piece, best merged score first.

    llama.cpp considers any adjacent pair whose text is in the vocabulary (of any type but
    byte pieces) and takes the highest-scoring merged piece first; ties go to the earlier id.
    """
    vocab = {t: i for i, t in enumerate(tokens)}
    ranked: list[tuple[float, int, int, str, str]] = []
    for i, t in enumerate(tokens):
        if types[i] == _BYTE or len(t) < 2:
            continue
        for k in range(1, len(t)):
            a, b = t[:k], t[k:]
            if a in vocab and b in vocab:
                ranked.append((-scores[i], i, k, a, b))
    ranked.sort()
    return [(a, b) for _, _, _, a, b in ranked]


def _spm_tokenizer(fields: dict[str, Any], tokens: list[str], types: list[int]) -> Tokenizer:
    scores: list[float] = [float(s) for s in fields.get("tokenizer.ggml.scores") or []]
    if len(scores) != len(tokens):
        raise EngineUnavailable(
            f"GGUF tokenizer.ggml.scores has {len(scores)} entries for {len(tokens)} tokens"
        )
    vocab = {t: i for i, t in enumerate(tokens)}
    unk = fields.get("tokenizer.ggml.unknown_token_id")
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=spm_merges(tokens, scores, types),
            unk_token=tokens[int(unk)] if unk is not None else None,
            byte_fallback=True,
            fuse_unk=False,
        )
    )
    prefix = fields.get("tokenizer.ggml.add_space_prefix")
    prefix = True if prefix is None else bool(prefix)
    norms = [normalizers.Prepend("▁")] if prefix else []
    tok.normalizer = normalizers.Sequence([*norms, normalizers.Replace(" ", "▁")])
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if prefix:
        steps.append(decoders.Strip(" ", 1, 0))
    tok.decoder = decoders.Sequence(steps)
    return tok


def build_tokenizer(fields: dict[str, Any]) -> Tokenizer:
    """``fields`` holds the ``tokenizer.ggml.*`` metadata values by full key."""
    tokens: list[str] = list(fields.get("tokenizer.ggml.tokens") or [])
    if not tokens:
        raise EngineUnavailable("GGUF has no tokenizer.ggml.tokens; cannot build a tokenizer")
    types: list[int] = [int(t) for t in fields.get("tokenizer.ggml.token_type") or []]
    types = types or [_NORMAL] * len(tokens)
    kind = str(fields.get("tokenizer.ggml.model", "gpt2"))
    if kind == "gpt2":
        merges = [tuple(m.split(" ", 1)) for m in fields.get("tokenizer.ggml.merges") or []]
        vocab = {t: i for i, t in enumerate(tokens)}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
        tok.pre_tokenizer = _byte_level_pre(str(fields.get("tokenizer.ggml.pre") or "default"))
        tok.decoder = decoders.ByteLevel()
    elif kind == "llama":
        tok = _spm_tokenizer(fields, tokens, types)
    else:
        raise EngineUnavailable(
            f"GGUF tokenizer model {kind!r} is not supported; supported: gpt2 (byte-level BPE), "
            "llama (SentencePiece)"
        )
    special = [
        AddedToken(t, special=ty == _CONTROL, normalized=False)
        for t, ty in zip(tokens, types, strict=False)
        if ty in (_CONTROL, _USER_DEFINED) and t
    ]
    if special:
        tok.add_tokens(special)
    return tok
