"""Paired comparisons across two reports: per-image results round-trip, and unequal test sets are refused."""

import numpy as np
import pytest
import torch

from training.robustness.compare import compare, labels_digest, pack_correct, unpack_correct
from training.robustness.settings import EvaluationError


def report(correct: dict[str, dict[str, np.ndarray]], y: torch.Tensor, eps: float = 0.1) -> dict:
    return {
        "artifact": {"name": "a"},
        "eps": eps,
        "data": {"dataset": "fashion-mnist", "n": len(y), "labels_sha256": labels_digest(y)},
        "correct": {m: {k: pack_correct(v) for k, v in row.items()} for m, row in correct.items()},
    }


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
    d = compare(
        report({"merged": {"pgd20": better}}, y), "merged", report({"main": {"pgd20": base}}, y), "main", "pgd20"
    )
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


def test_kept_epochs_compare_like_fig_1(tmp_path, tiny_overrides):
    """stage1.keep_epochs keeps epochs 1 and 2; `dhat compare` attacks each and writes table and figure."""
    import json

    from typer.testing import CliRunner

    from dhat_serve.cli import app
    from training.pipeline import train_recipe
    from training.recipes import load_recipe

    recipe = load_recipe("digits", [*tiny_overrides, "stage1.epochs=2", "stage1.keep_epochs=[1, 2]"])
    run = train_recipe(recipe, tmp_path / "run", stages=(1,), device="cpu")
    assert (run / "stage1/epoch-1/model.safetensors").is_file() and (run / "stage1/epoch-2").is_dir()
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(run / "stage1/epoch-1"),
            str(run / "stage1/epoch-2"),
            "--n",
            "40",
            "--steps",
            "5",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    table = json.loads((out / "compare.json").read_text())
    acc = table["accuracy"]
    assert table["n"] == 40 and set(acc) == {"A", "B"} and "epoch 1" in table["A"] and "epoch 2" in table["B"]
    for row in acc.values():
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert acc["A"]["PGD-5 of A"] <= acc["A"]["clean"] and acc["B"]["PGD-5 of B"] <= acc["B"]["clean"]
    assert len(table["prediction_examples"]) == 4 and (out / "compare.png").stat().st_size > 5000
    assert "| A |" in (out / "compare.md").read_text()
    refused = CliRunner().invoke(app, ["compare", str(run / "stage1/epoch-1"), str(tmp_path)])
    assert refused.exit_code == 2 and "not a checkpoint" in refused.output
