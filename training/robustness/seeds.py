"""Evidence across training runs: the same paired comparison on each seed's run, and its mean across seeds.

A paired interval within one report covers the sampling of the test images, not the spread between training
runs, which is larger (the committed ``fashion-mnist-cpu`` seeds: README). So a claim about DH-AT is made on the
across-seed mean with a
Student-t interval over the per-seed differences (each seed one independent training run, evaluated on the
same test images), with the within-run intervals beside it. The verdict follows the across-seed interval
whichever way it falls: "higher" / "lower" only when it excludes 0.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from scipy import stats as st

from training.robustness.compare import compare


def t_interval(values: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean of ``values`` (one per seed) with its two-sided Student-t interval (n - 1 degrees of freedom); with one
    value the interval is undefined (None): one training run says nothing about the spread between runs."""
    n = len(values)
    mean = sum(values) / n if n else 0.0
    if n < 2:
        return {
            "mean": mean,
            "sd": None,
            "n": n,
            "ci95": None,
            "t_p": None,
            "verdict": "one training run: no across-seed interval",
        }
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(st.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    lo, hi = mean - half, mean + half
    p = float(2 * st.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1)) if sd > 0 else (1.0 if mean == 0 else 0.0)
    verdict = "higher" if lo > 0 else "lower" if hi < 0 else "no significant difference"
    return {
        "mean": mean,
        "sd": sd,
        "n": n,
        "ci95": [lo, hi],
        "t_p": p,
        "verdict": verdict,
        "power_at_mean": t_power(mean, sd, n),
        "seeds_for_80pct_power": seeds_for_power(mean, sd),
    }


def t_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float | None:
    """Power of the two-sided one-sample t-test over ``n`` seeds when the true mean difference is ``effect`` and the
    between-seed SD is ``sd`` (noncentral t): how often ``n`` seeds would find an effect of this size. None without
    spread (``sd`` 0) or with fewer than two seeds."""
    if n < 2 or not sd:
        return None
    crit = float(st.t.ppf(1 - alpha / 2, n - 1))
    nc = effect / (sd / math.sqrt(n))
    return float(st.nct.sf(crit, n - 1, nc) + st.nct.cdf(-crit, n - 1, nc))


def seeds_for_power(effect: float, sd: float, target: float = 0.8, most: int = 100) -> int | None:
    """The fewest seeds whose ``t_power`` at (``effect``, ``sd``) reaches ``target`` (None: not within ``most``)."""
    return next((n for n in range(2, most + 1) if (t_power(effect, sd, n) or 0) >= target), None)


def per_seed(
    reports: dict[int, tuple[dict[str, Any], dict[str, Any]]], mode_a: str, mode_b: str, attack: str
) -> dict[str, Any]:
    """``reports[seed] = (report_a, report_b)``: each seed's paired difference of (a, mode_a) - (b, mode_b) under
    ``attack`` on the same images (Newcombe's interval, McNemar), and the across-seed ``t_interval`` of them."""
    rows = {seed: compare(a, mode_a, b, mode_b, attack) for seed, (a, b) in sorted(reports.items())}
    return {
        "per_seed": {str(s): r for s, r in rows.items()},
        "across_seeds": t_interval([r["difference"] for r in rows.values()]),
    }


def difference_interval(a: list[float], b: list[float], confidence: float = 0.95) -> dict[str, Any] | None:
    """Mean of ``a`` minus mean of ``b`` (one value per training run each) with its two-sided interval: Welch's t
    when both have several runs; with one run on a side, a t interval that lends it the other side's between-run
    spread (n - 1 degrees of freedom of that side); None with one run each (nothing says how runs vary)."""
    na, nb = len(a), len(b)
    if min(na, nb) < 1 or max(na, nb) < 2:
        return None
    diff = sum(a) / na - sum(b) / nb
    if min(na, nb) >= 2:
        ci = st.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
        lo, hi = (diff, diff) if math.isnan(ci.low) else (float(ci.low), float(ci.high))  # nan: no spread on either
        return {"difference": diff, "ci95": [lo, hi], "test": f"Welch t over {na} and {nb} runs"}
    many = a if na > 1 else b
    half = float(st.t.ppf(0.5 + confidence / 2, len(many) - 1)) * math.sqrt(
        statistics.variance(many) * (1 / na + 1 / nb)
    )
    test = f"t over {len(many)} runs and one"
    return {"difference": diff, "ci95": [diff - half, diff + half], "test": test}
