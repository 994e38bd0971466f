"""Error bars for robustness numbers, so a claim such as "merged beats main" is made only when data show it.

- ``wilson``: the 95 % Wilson score interval of one accuracy (k correct of n), good at small n and near
  0 or 1, where the normal approximation is not.
- ``paired_difference``: the difference of two accuracies on the *same* test images (merged vs main),
  with Newcombe's hybrid score 95 % interval for paired proportions and McNemar's exact test on the
  discordant pairs. Pairing matters: the heads are right on mostly the same images, so the difference is far
  more certain than two independent intervals suggest.
- ``adjust_secondaries``: one comparison of a set is its primary endpoint, named in advance; the others are
  secondary, with Holm-adjusted p-values and verdicts on them (``holm``).
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


def paired_interval(both: int, only_a: int, only_b: int, neither: int, z: float = Z95) -> tuple[float, float]:
    """95 % interval of p_a - p_b from a paired 2x2 table: Newcombe's hybrid score interval (Newcombe 1998,
    "Improved confidence intervals for the difference between binomial proportions based on paired data",
    Statistics in Medicine 17:2635-2650, method 10).

    Why this one: it combines the two accuracies' Wilson intervals with the correlation of the pairs, so it keeps
    close to 95 % coverage at small n and stays sensible with few or no discordant pairs (where the percentile
    bootstrap collapses to [0, 0]); it needs no iteration (Tango's score interval does) and it never leaves
    [-1, 1]. The correlation term uses Newcombe's continuity-corrected phi, as in Altman et al. (2000),
    "Statistics with Confidence", 2nd ed., ch. 6.
    """
    n = both + only_a + only_b + neither
    if n == 0:
        return -1.0, 1.0
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    l_a, u_a = wilson(both + only_a, n, z)
    l_b, u_b = wilson(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b
    corrected = cross - n / 2 if cross > n / 2 else cross if cross < 0 else 0.0
    phi = corrected / math.sqrt(margins) if margins > 0 else 0.0
    d = p_a - p_b
    lower = d - math.sqrt(max(0.0, (p_a - l_a) ** 2 - 2 * phi * (p_a - l_a) * (u_b - p_b) + (u_b - p_b) ** 2))
    upper = d + math.sqrt(max(0.0, (u_a - p_a) ** 2 - 2 * phi * (u_a - p_a) * (p_b - l_b) + (p_b - l_b) ** 2))
    return max(-1.0, lower), min(1.0, upper)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given: the i-th smallest of m is multiplied
    by m - i + 1, made monotone and capped at 1. A verdict at 0.05 on the adjusted p keeps the family-wise error
    of all the comparisons it covers at 5 %."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdict_of(difference: float, ci: list[float], p: float) -> str:
    """ "higher" / "lower" only when the interval excludes 0 and ``p`` (raw or adjusted) is below 0.05."""
    if p < 0.05 and (ci[0] > 0 or ci[1] < 0):
        return "higher" if difference > 0 else "lower"
    return "no significant difference"


def paired_difference(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Accuracy of ``a`` minus accuracy of ``b`` on the same images, with a paired 95 % interval.

    ``a`` and ``b`` are boolean (N,) correctness vectors. The interval is Newcombe's hybrid score interval
    (``paired_interval``), the test McNemar's exact one on the discordant pairs; the verdict says ``a > b`` or
    ``a < b`` only when both agree (the interval excludes 0 and p < 0.05). A secondary comparison's verdict is
    redone on its Holm-adjusted p (``adjust_secondaries``).
    """
    a, b = a.astype(bool), b.astype(bool)
    n = a.size
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    both = int((a & b).sum())
    diff = (only_a - only_b) / n if n else 0.0
    lo, hi = paired_interval(both, only_a, only_b, n - both - only_a - only_b)
    p = mcnemar_exact(only_a, only_b)
    return {
        "difference": diff,
        "ci95": [lo, hi],
        "interval": "newcombe-hybrid-score",
        "mcnemar_p": p,
        "only_first_correct": only_a,
        "only_second_correct": only_b,
        "n": n,
        "verdict": verdict_of(diff, [lo, hi], p),
    }


def adjust_secondaries(
    comparisons: list[dict[str, Any]],
    primary: dict[str, Any] | None,
    p_key: str = "mcnemar_p",
    estimate: str = "difference",
) -> None:
    """Mark ``primary`` (the comparison named before the data were seen) as such, and every other one as
    secondary with its Holm-adjusted p (over the secondaries) and a verdict on that adjusted p. In place.
    ``p_key`` / ``estimate`` name the p-value and the effect (McNemar's and the paired difference within a run;
    the t-test's and the mean across seeds)."""
    secondary = [c for c in comparisons if c is not primary and c.get(p_key) is not None]
    for c, adjusted in zip(secondary, holm([c[p_key] for c in secondary]), strict=True):
        c.update(role="secondary", holm_p=adjusted, verdict=verdict_of(c[estimate], c["ci95"], adjusted))
    if primary is not None:
        primary.update(role="primary", holm_p=primary[p_key])
