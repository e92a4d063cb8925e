"""A second, independent SentencePiece tokenizer: llama.cpp's algorithm, written out in Python.

Special (control and user-defined) tokens are split out of the raw text first, longest
first; each remaining fragment gets a leading space (when ``add_space_prefix``) if it starts
the text or follows a special token, spaces become ``▁``, and the fragment's characters are
merged greedily: the adjacent pair whose concatenation is the highest-scoring piece first,
the leftmost on ties. Characters left that are no piece become ``<0xXX>`` byte tokens.
Slow and simple on purpose: the engine's tokenizer is checked against it.
"""

from __future__ import annotations

import heapq

CONTROL, USER_DEFINED, BYTE = 3, 4, 6


class SpmReference:
    def __init__(
        self, tokens: list[str], scores: list[float], types: list[int], add_space_prefix: bool
    ) -> None:
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.scores = scores
        self.prefix = add_space_prefix
        specials = [t for t, ty in zip(tokens, types, strict=True) if ty in (CONTROL, USER_DEFINED)]
        self.specials = sorted((t for t in specials if t), key=len, reverse=True)
        self.bytes = {
            int(t[3:5], 16): i for i, t in enumerate(tokens) if types[i] == BYTE and len(t) == 6
        }

    def _partition(self, text: str) -> list[str | int]:
        parts: list[str | int] = [text]
        for sp in self.specials:
            out: list[str | int] = []
            for p in parts:
                if not isinstance(p, str):
                    out.append(p)
                    continue
                while (i := p.find(sp)) >= 0:
                    if i:
                        out.append(p[:i])
                    out.append(self.vocab[sp])
                    p = p[i + len(sp) :]
                if p:
                    out.append(p)
            parts = out
        return parts

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        prev_special = True
        for part in self._partition(text):
            if isinstance(part, int):
                out.append(part)
                prev_special = True
                continue
            frag = (" " if self.prefix and prev_special else "") + part
            out += self._merge(frag.replace(" ", "▁"))
            prev_special = False
        return out

    def _merge(self, text: str) -> list[int]:
        sym = list(text)
        alive = [True] * len(sym)
        nxt = list(range(1, len(sym) + 1))
        prv = list(range(-1, len(sym) - 1))
        heap: list[tuple[float, int, str, str]] = []

        def push(left: int, right: int) -> None:
            if left < 0 or right >= len(sym):
                return
            tid = self.vocab.get(sym[left] + sym[right])
            if tid is not None:
                heapq.heappush(heap, (-self.scores[tid], left, sym[left], sym[right]))

        for i in range(len(sym) - 1):
            push(i, i + 1)
        while heap:
            _, left, a, b = heapq.heappop(heap)
            right = nxt[left]
            if not alive[left] or right >= len(sym) or sym[left] != a or sym[right] != b:
                continue  # stale: one side was merged since
            sym[left] += sym[right]
            alive[right] = False
            nxt[left] = nxt[right]
            if nxt[left] < len(sym):
                prv[nxt[left]] = left
            push(prv[left], left)
            push(left, nxt[left])
        ids: list[int] = []
        for i, s in enumerate(sym):
            if not alive[i]:
                continue
            tid = self.vocab.get(s)
            if tid is not None:
                ids.append(tid)
            else:
                ids += [self.bytes[b] for b in s.encode()]
        return ids
