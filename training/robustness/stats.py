"""Error bars for robustness numbers, so a claim such as "merged beats main" is made only when data show it.

- ``wilson``: the 95 % Wilson score interval of one accuracy (k correct of n), good at small n and near
  0 or 1, where the normal approximation is not.
- ``paired_difference``: the difference of two accuracies on the *same* test images (merged vs main),
  with a paired bootstrap 95 % interval and McNemar's exact test on the discordant pairs. Pairing matters:
  the heads are right on mostly the same images, so the difference is far more certain than two
  independent intervals suggest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z95 = 1.959963984540054


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson interval (lower, upper) of the proportion ``correct / n``; (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lower = 0.0 if correct == 0 else max(0.0, centre - half)  # exact at the ends, not 1e-17 off
    upper = 1.0 if correct == n else min(1.0, centre + half)
    return lower, upper


def accuracy_with_ci(correct: np.ndarray) -> dict[str, Any]:
    """``{"accuracy", "ci95": [lo, hi], "n"}`` of a boolean (N,) vector of per-image correctness."""
    k, n = int(correct.sum()), int(correct.size)
    lo, hi = wilson(k, n)
    return {"accuracy": k / n if n else 0.0, "ci95": [lo, hi], "n": n}


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: discordant pairs split as Binomial(only_a + only_b, 1/2)."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(only_a, only_b) + 1)) / 2**m
    return min(1.0, 2 * tail)


def paired_difference(a: np.ndarray, b: np.ndarray, seed: int = 0, resamples: int = 2000) -> dict[str, Any]:
    """Accuracy of ``a`` minus accuracy of ``b`` on the same images, with a paired 95 % interval.

    ``a`` and ``b`` are boolean (N,) correctness vectors. The interval is the percentile interval of
    ``resamples`` bootstrap resamples of the images (seeded, so the report is reproducible); the verdict
    says ``a > b`` or ``a < b`` only when the interval excludes 0 and McNemar's exact p is below 0.05.
    """
    a, b = a.astype(bool), b.astype(bool)
    n = a.size
    diff = float(a.mean() - b.mean()) if n else 0.0
    rng = np.random.default_rng(seed)
    delta = a.astype(np.int8) - b.astype(np.int8)
    boots = np.array([delta[rng.integers(0, n, n)].mean() for _ in range(resamples)]) if n else np.zeros(1)
    lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = mcnemar_exact(only_a, only_b)
    # both must agree: with few discordant images the percentile interval can exclude 0 while the exact test
    # cannot (4 of 4 discordant pairs one way: interval above 0, McNemar p = 0.125)
    significant = p < 0.05 and (lo > 0 or hi < 0)
    verdict = "no significant difference" if not significant else "higher" if lo > 0 else "lower"
    return {"difference": diff, "ci95": [lo, hi], "mcnemar_p": p,
            "only_first_correct": only_a, "only_second_correct": only_b, "n": n, "verdict": verdict}
