"""Paired significance tests for two paradigms run on the same tasks.

- ``mcnemar_exact``: the exact (binomial) McNemar test on the discordant pairs of a correct /
  wrong outcome — the right test for two classifiers scored on the same items;
- ``paired_bootstrap``: a percentile bootstrap of the mean paired difference (for graded
  quality such as ROUGE, and as a confidence interval for accuracy differences), resampling
  tasks with a seeded RNG so the interval is reproducible;
- ``sign_flip_p``: the paired randomization (sign-flip) test of the mean difference — exact
  up to 16 non-zero pairs, seeded Monte Carlo beyond; unlike a bootstrap p-value it stays
  valid for a handful of tasks (one task can never give p < 1);
- ``holm``: Holm–Bonferroni adjusted p-values for a family of tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def binom_cdf(k: int, n: int, p: float = 0.5) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed exactly in log space."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    total = 0.0
    for i in range(k + 1):
        log_term = (
            math.lgamma(n + 1)
            - math.lgamma(i + 1)
            - math.lgamma(n - i + 1)
            + i * math.log(p)
            + (n - i) * math.log1p(-p)
        )
        total += math.exp(log_term)
    return min(1.0, total)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: ``b`` pairs only A got right, ``c`` only B got right."""
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf(min(b, c), n))


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, iters: int = 5000, seed: int = 0
) -> tuple[float, float, float, float]:
    """Mean of ``a - b``, its 95% percentile-bootstrap interval and a two-sided p-value.

    Pairs are resampled together. The p-value is twice the smaller share of resampled means
    on either side of zero (at least ``1 / iters``; 1.0 when every difference is zero).
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples must have equal length, got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return (0.0, 0.0, 0.0, 1.0)
    diffs = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, n, size=(iters, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    if not diffs.any():
        return (0.0, 0.0, 0.0, 1.0)
    side = min(float((means <= 0).mean()), float((means >= 0).mean()))
    p = min(1.0, max(2.0 * side, 1.0 / iters))
    return (float(diffs.mean()), float(lo), float(hi), p)


def sign_flip_p(
    a: Sequence[float], b: Sequence[float], *, iters: int = 20000, seed: int = 0
) -> float:
    """Two-sided p-value of the paired sign-flip test of ``mean(a - b) = 0``."""
    if len(a) != len(b):
        raise ValueError(f"paired samples must have equal length, got {len(a)} and {len(b)}")
    diffs = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diffs = diffs[diffs != 0]
    m = len(diffs)
    if m == 0:
        return 1.0
    observed = abs(float(diffs.sum())) - 1e-12
    if m <= 16:
        signs = ((np.arange(2**m)[:, None] >> np.arange(m)) & 1) * 2 - 1
        return float((np.abs(signs @ diffs) >= observed).mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(iters, m))
    hits = int((np.abs(signs @ diffs) >= observed).sum())
    return (hits + 1) / (iters + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
