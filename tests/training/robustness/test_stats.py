"""Intervals and paired tests behind every number of the robustness report."""

from __future__ import annotations

import numpy as np
import pytest

from training.robustness.stats import mcnemar_exact, paired_difference, wilson


def test_wilson_matches_the_textbook_values():
    lo, hi = wilson(81, 100)  # Wilson (1927) / Newcombe (1998): 81/100 -> 0.7222 to 0.8749
    assert lo == pytest.approx(0.7222, abs=1e-4) and hi == pytest.approx(0.8749, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    assert wilson(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)


def test_mcnemar_exact_is_a_two_sided_binomial_test():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)  # all 6 discordant pairs one way: 2 * 0.5^6
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)


def test_a_real_paired_gain_is_called_and_a_tie_is_not():
    rng = np.random.default_rng(0)
    base = rng.random(2000) < 0.6
    better = base.copy()
    better[np.flatnonzero(~base)[:100]] = True  # 100 more images right, none lost: +5 points
    up = paired_difference(better, base)
    assert up["difference"] == pytest.approx(0.05) and up["verdict"] == "higher" and up["ci95"][0] > 0
    assert up["only_first_correct"] == 100 and up["only_second_correct"] == 0 and up["mcnemar_p"] < 1e-20
    swapped = base.copy()
    idx_right, idx_wrong = np.flatnonzero(base)[:30], np.flatnonzero(~base)[:30]
    swapped[idx_right], swapped[idx_wrong] = False, True  # same accuracy, 60 images changed
    tie = paired_difference(swapped, base)
    assert tie["difference"] == 0 and tie["verdict"] == "no significant difference" and tie["ci95"][0] < 0 < tie["ci95"][1]
    assert paired_difference(base, better)["verdict"] == "lower"


def test_a_few_discordant_images_one_way_are_not_called_a_difference():
    base = np.zeros(64, bool)
    four = base.copy()
    four[:4] = True  # 4 of 4 discordant pairs favour the first: the bootstrap interval excludes 0, McNemar does not
    d = paired_difference(four, base)
    assert d["ci95"][0] > 0 and d["mcnemar_p"] == pytest.approx(0.125)
    assert d["verdict"] == "no significant difference"
