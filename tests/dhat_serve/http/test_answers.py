"""The answers of /classify and /predict, built from the runtime's outputs through the contract's table."""

from __future__ import annotations

import numpy as np
import pytest

from dhat_serve.errors import BadRequest
from dhat_serve.http.answers import check_top_k, classify_answer, predict_answer

ARTIFACT = {"name": "t", "version": "v"}
NAMES = [str(i) for i in range(3)]


def _logits(*labels: int) -> np.ndarray:
    return np.eye(3, dtype=np.float32)[list(labels)] * 5


def test_mode_all_has_one_shape_on_both_endpoints():
    outputs = {"logits": _logits(0, 1), "main_logits": _logits(0, 1), "second_logits": _logits(0, 2)}
    batch = predict_answer("all", outputs, ARTIFACT)
    assert set(batch) == {"mode", "modes", "heads_agree", "all_agree", "artifact"}
    assert list(batch["modes"]) == ["merged", "main", "second"]
    assert batch["modes"]["second"]["labels"] == [0, 2] and batch["modes"]["merged"]["labels"] == [0, 1]
    assert batch["heads_agree"] == [True, False] and batch["all_agree"] == [True, False]
    one = classify_answer("all", {k: v[1:] for k, v in outputs.items()}, NAMES, 2, ARTIFACT)
    assert set(one) == set(batch) and list(one["modes"]) == ["merged", "main", "second"]
    assert one["modes"]["second"]["label"] == 2 and one["heads_agree"] is False and one["all_agree"] is False


def test_a_single_mode_answers_inline():
    answer = predict_answer("second", {"logits": _logits(2)}, ARTIFACT)
    assert answer["mode"] == "second" and answer["labels"] == [2] and "modes" not in answer
    single = classify_answer("main", {"logits": _logits(1)}, NAMES, 1, ARTIFACT)
    assert single["label"] == 1 and single["class_name"] == "1" and len(single["top_k"]) == 1


def test_top_k_outside_the_classes_is_refused_not_clipped():
    assert check_top_k(3, 3) == 3
    assert check_top_k(None, 3) == 3 and check_top_k(None, 10) == 5  # the default fits small models
    for bad in (0, 4):
        with pytest.raises(BadRequest, match="top_k must be between 1 and 3"):
            check_top_k(bad, 3)
