"""Next-token choice on numpy logits: greedy, or temperature / top-k / top-p with a seeded RNG.

The same seed and the same logits give the same token sequence: the RNG is created per
request from the seed and advanced once per sampled token.
"""

from __future__ import annotations

import numpy as np

from agentsim.chat import Sampling


class Sampler:
    """Chooses tokens for one request."""

    def __init__(self, sampling: Sampling, seed: int) -> None:
        self.s = sampling
        self.rng = np.random.default_rng(seed)

    def penalize(self, logits: np.ndarray, history: list[int]) -> np.ndarray:
        """CTRL-style repetition penalty over the tokens seen so far (prompt and output)."""
        rp = self.s.repetition_penalty
        if rp == 1.0 or not history:
            return logits
        out = logits.copy()
        seen = np.unique(np.asarray(history, dtype=np.int64))
        seen = seen[(seen >= 0) & (seen < out.shape[0])]
        vals = out[seen]
        out[seen] = np.where(vals > 0, vals / rp, vals * rp)
        return out

    def __call__(self, logits: np.ndarray, history: list[int]) -> int:
        logits = self.penalize(logits, history)
        if self.s.temperature <= 0.0:
            return int(np.argmax(logits))
        x = logits.astype(np.float64) / self.s.temperature
        k = self.s.top_k
        if 0 < k < x.shape[0]:
            kth = np.partition(x, -k)[-k]
            x = np.where(x >= kth, x, -np.inf)
        x -= np.max(x)
        p = np.exp(x)
        p /= p.sum()
        if self.s.top_p < 1.0:
            order = np.argsort(-p, kind="stable")
            cum = np.cumsum(p[order])
            keep = order[: int(np.searchsorted(cum, self.s.top_p) + 1)]
            q = np.zeros_like(p)
            q[keep] = p[keep]
            p = q / q.sum()
        return int(self.rng.choice(p.shape[0], p=p))
