"""Intervals and paired tests behind every number of the robustness report."""

from __future__ import annotations

import numpy as np
import pytest

from training.robustness.stats import (
    adjust_secondaries,
    holm,
    mcnemar_exact,
    paired_difference,
    paired_interval,
    wilson,
)


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
    assert (
        tie["difference"] == 0 and tie["verdict"] == "no significant difference" and tie["ci95"][0] < 0 < tie["ci95"][1]
    )
    assert paired_difference(base, better)["verdict"] == "lower"


def test_a_few_discordant_images_one_way_are_not_called_a_difference():
    base = np.zeros(64, bool)
    four = base.copy()
    four[:4] = True  # 4 of 4 discordant pairs favour the first: neither Newcombe's interval nor McNemar calls it
    d = paired_difference(four, base)
    assert d["ci95"][0] < 0 < d["ci95"][1] and d["mcnemar_p"] == pytest.approx(0.125)
    assert d["verdict"] == "no significant difference" and d["interval"] == "newcombe-hybrid-score"


def test_the_paired_interval_reproduces_newcombes_published_example():
    # Newcombe (1998), Stat. Med. 17:2635, Table II example (a): a, b, c, d = 36, 12, 2, 0 (n = 50),
    # difference 0.2000, method 10 (hybrid score, continuity-corrected phi): 0.0569 to 0.3404
    lo, hi = paired_interval(36, 12, 2, 0)
    assert lo == pytest.approx(0.0569, abs=1e-4) and hi == pytest.approx(0.3404, abs=1e-4)
    # Altman et al. (2000), "Statistics with Confidence", Table 6.2: 14, 5, 0, 22 (n = 41), difference 0.122
    lo, hi = paired_interval(14, 5, 0, 22)
    assert lo == pytest.approx(0.0115, abs=1e-4) and hi == pytest.approx(0.2265, abs=1e-4)


def test_no_discordant_pairs_still_give_an_interval_of_plausible_differences():
    same = np.r_[np.ones(60, bool), np.zeros(40, bool)]
    d = paired_difference(same, same.copy())
    assert d["difference"] == 0 and d["ci95"][0] < -0.02 and d["ci95"][1] > 0.02  # the bootstrap gave [0, 0]
    assert d["mcnemar_p"] == 1.0 and d["verdict"] == "no significant difference"
    assert paired_interval(0, 0, 0, 0) == (-1.0, 1.0)


def test_holm_adjusts_the_secondaries_and_leaves_the_primary_alone():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])  # Holm (1979)'s step-down
    assert holm([]) == [] and holm([0.9, 0.8]) == [1.0, 1.0]  # 2 x 0.8 caps at 1; monotone
    primary = {"difference": 0.01, "ci95": [0.001, 0.02], "mcnemar_p": 0.04, "verdict": "higher"}
    secondaries = [
        {"difference": 0.01, "ci95": [0.001, 0.02], "mcnemar_p": p, "verdict": "higher"} for p in (0.02, 0.03)
    ]
    adjust_secondaries([primary, *secondaries], primary)
    assert primary["role"] == "primary" and primary["verdict"] == "higher"
    assert [c["holm_p"] for c in secondaries] == pytest.approx([0.04, 0.04])
    assert all(c["role"] == "secondary" and c["verdict"] == "higher" for c in secondaries)
    adjust_secondaries(secondaries + [{"difference": 0.01, "ci95": [0.001, 0.02], "mcnemar_p": 0.04}], None)
    assert [c["holm_p"] for c in secondaries] == pytest.approx([0.06, 0.06]) and secondaries[0][
        "verdict"
    ] == "no significant difference"
