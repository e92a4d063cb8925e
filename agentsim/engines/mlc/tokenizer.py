"""Build a Hugging Face ``tokenizers`` tokenizer from GGUF ``tokenizer.ggml.*`` metadata.

Byte-level BPE (``gpt2`` model) is rebuilt exactly: vocabulary, merges, control tokens and the
pre-tokenizer named by ``tokenizer.ggml.pre``. SentencePiece vocabularies (``llama`` model) are
approximated with a Unigram model over the GGUF scores with byte fallback.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

from agentsim.engines.base import EngineUnavailable

_CONTROL, _USER_DEFINED = 3, 4

# Split patterns of the pre-tokenizers llama.cpp names (same regexes as the upstream tokenizers).
_QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _byte_level_pre(pre: str) -> Any:
    if pre in ("smollm", "starcoder", "refact", "deepseek-coder"):
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    pattern = {"qwen2": _QWEN2, "llama-bpe": _LLAMA3, "llama3": _LLAMA3}.get(pre)
    if pattern is None:
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def build_tokenizer(fields: dict[str, Any]) -> Tokenizer:
    """``fields`` holds the ``tokenizer.ggml.*`` metadata values by full key."""
    tokens: list[str] = list(fields.get("tokenizer.ggml.tokens") or [])
    if not tokens:
        raise EngineUnavailable("GGUF has no tokenizer.ggml.tokens; cannot build a tokenizer")
    types: list[int] = list(fields.get("tokenizer.ggml.token_type") or [1] * len(tokens))
    kind = str(fields.get("tokenizer.ggml.model", "gpt2"))
    if kind == "gpt2":
        merges = [tuple(m.split(" ", 1)) for m in fields.get("tokenizer.ggml.merges") or []]
        vocab = {t: i for i, t in enumerate(tokens)}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
        tok.pre_tokenizer = _byte_level_pre(str(fields.get("tokenizer.ggml.pre", "gpt2")))
        tok.decoder = decoders.ByteLevel()
    elif kind == "llama":
        scores: list[float] = list(fields.get("tokenizer.ggml.scores") or [0.0] * len(tokens))
        unk = int(fields.get("tokenizer.ggml.unknown_token_id", 0))
        tok = Tokenizer(
            models.Unigram(list(zip(tokens, scores, strict=True)), unk_id=unk, byte_fallback=True)
        )
        tok.normalizer = normalizers.Sequence(
            [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
        )
        tok.decoder = decoders.Sequence(
            [
                decoders.Replace("▁", " "),
                decoders.ByteFallback(),
                decoders.Fuse(),
                decoders.Strip(" ", 1, 0),
            ]
        )
    else:
        raise EngineUnavailable(
            f"GGUF tokenizer model {kind!r} is not supported; supported: gpt2 (byte-level BPE), "
            "llama (SentencePiece)"
        )
    special = [
        AddedToken(t, special=ty == _CONTROL, normalized=False)
        for t, ty in zip(tokens, types, strict=False)
        if ty in (_CONTROL, _USER_DEFINED)
    ]
    if special:
        tok.add_tokens(special)
    return tok
