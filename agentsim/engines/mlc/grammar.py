"""JSON-Schema-constrained decoding with ``llguidance``: a token mask on numpy logits.

The ``LLTokenizer`` costs about a second to build for a 49k vocabulary, so it is built once
per engine, on the first constrained request.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from agentsim.engines.base import EngineError


class GrammarFactory:
    """Builds matchers for one tokenizer (``tokenizers.Tokenizer.to_str()`` JSON)."""

    def __init__(self, tokenizer_json: str, vocab_size: int, eos_ids: list[int]) -> None:
        import llguidance

        self._ll = llguidance
        self.vocab_size = vocab_size
        self.tok = llguidance.LLTokenizer(tokenizer_json, n_vocab=vocab_size, eos_token=eos_ids)

    def json_schema(self, schema: dict[str, Any]) -> JsonConstraint:
        """A matcher for a JSON Schema, or for a Lark grammar given as ``{"x-lark": text}``.

        The Lark form lets a protocol constrain text around JSON (the seed study's XML tags
        with a ``%json`` call inside).
        """
        lark = schema.get("x-lark") if len(schema) == 1 else None
        try:
            if isinstance(lark, str):
                grammar = self._ll.LLMatcher.grammar_from_lark(lark)
            else:
                grammar = self._ll.LLMatcher.grammar_from_json_schema(
                    json.dumps(schema), defaults={"whitespace_flexible": False}
                )
        except (ValueError, TypeError) as e:
            raise EngineError(f"response_schema is not a usable JSON Schema: {e}") from e
        matcher = self._ll.LLMatcher(self.tok, grammar, log_level=0)
        if matcher.is_error():
            raise EngineError(f"response_schema rejected by llguidance: {matcher.get_error()}")
        return JsonConstraint(matcher, self.vocab_size)


class JsonConstraint:
    """One request's grammar state: mask the logits, then consume the chosen token."""

    def __init__(self, matcher: Any, vocab_size: int) -> None:
        self.m = matcher
        self.vocab = vocab_size
        self.words = (vocab_size + 31) // 32

    def mask(self, logits: np.ndarray) -> np.ndarray:
        bitmask = np.zeros(self.words, dtype=np.int32)
        self.m.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
        allowed = np.unpackbits(bitmask.view(np.uint8), bitorder="little")[: logits.shape[0]]
        return np.where(allowed.astype(bool), logits, np.float32(-np.inf))

    def consume(self, token: int) -> None:
        if not self.m.consume_token(token):
            raise EngineError(f"grammar rejected token {token}: {self.m.get_error()}")

    @property
    def stopped(self) -> bool:
        return bool(self.m.is_stopped())
