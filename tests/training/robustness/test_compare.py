"""Paired comparisons across two reports: per-image results round-trip, and unequal test sets are refused."""

import numpy as np
import pytest
import torch

from training.robustness.compare import compare, labels_digest, pack_correct, unpack_correct
from training.robustness.settings import EvaluationError


def report(correct: dict[str, dict[str, np.ndarray]], y: torch.Tensor, eps: float = 0.1) -> dict:
    return {"artifact": {"name": "a"}, "eps": eps,
            "data": {"dataset": "fashion-mnist", "n": len(y), "labels_sha256": labels_digest(y)},
            "correct": {m: {k: pack_correct(v) for k, v in row.items()} for m, row in correct.items()}}


def test_per_image_results_round_trip_through_hex_for_any_length():
    rng = np.random.default_rng(0)
    for n in (1, 7, 8, 9, 10000):
        v = rng.random(n) < 0.5
        assert np.array_equal(unpack_correct(pack_correct(v), n), v)
    assert len(pack_correct(np.ones(10000, bool))) == 2500  # 1,250 bytes as hex


def test_two_reports_on_the_same_images_are_paired_image_by_image():
    y = torch.arange(200) % 10
    base = np.zeros(200, bool)
    base[:100] = True
    better = base.copy()
    better[100:140] = True  # 40 more right, none lost
    d = compare(report({"merged": {"pgd20": better}}, y), "merged", report({"main": {"pgd20": base}}, y), "main", "pgd20")
    assert d["difference"] == pytest.approx(0.2) and d["only_first_correct"] == 40 and d["verdict"] == "higher"


def test_different_images_eps_or_a_missing_result_are_refused():
    y = torch.arange(50) % 10
    a = report({"main": {"pgd20": np.ones(50, bool)}}, y)
    with pytest.raises(EvaluationError, match="different test images"):
        compare(a, "main", report({"main": {"pgd20": np.ones(50, bool)}}, y.flip(0)), "main", "pgd20")
    with pytest.raises(EvaluationError, match="different eps"):
        compare(a, "main", report({"main": {"pgd20": np.ones(50, bool)}}, y, eps=0.2), "main", "pgd20")
    with pytest.raises(EvaluationError, match="no per-image result for main / autoattack"):
        compare(a, "main", a, "main", "autoattack")
