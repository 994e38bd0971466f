"""The across-seed evidence: per-seed paired differences and their Student-t interval, on synthetic reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from training.robustness.compare import pack_correct
from training.robustness.seeds import difference_interval, per_seed, t_interval

N = 400


def report(accuracies: dict[str, float], seed: int) -> dict:
    """A minimal report.json: per-image correctness of each mode under clean and pgd20 on the same N images."""
    rng = np.random.default_rng(seed)
    u = rng.random(N)  # one draw per image: modes with higher accuracy are right on a superset of images
    correct = {m: {a: pack_correct(u < acc) for a in ("clean", "pgd20")} for m, acc in accuracies.items()}
    return {
        "artifact": {"name": "synthetic"},
        "eps": 0.1,
        "results": {m: {} for m in accuracies},
        "correct": correct,
        "data": {"dataset": "synthetic", "n": N, "labels_sha256": "same"},
    }


def test_the_t_interval_matches_scipy_and_says_nothing_for_one_run():
    r = t_interval([0.0096, -0.0046, -0.0081])  # the three GPU runs' merged - main under PGD-20
    assert r["mean"] == pytest.approx(-0.001033, abs=1e-6) and r["n"] == 3
    assert r["ci95"][0] == pytest.approx(-0.02443, abs=2e-4) and r["ci95"][1] == pytest.approx(0.02237, abs=2e-4)
    assert r["verdict"] == "no significant difference"
    assert t_interval([0.01, 0.012, 0.011])["verdict"] == "higher"
    one = t_interval([0.02])
    assert one["ci95"] is None and one["verdict"].startswith("one training run")


def test_per_seed_differences_are_paired_and_summarised():
    reports = {s: (report({"merged": 0.62 + 0.01 * s, "main": 0.60}, s), report({"main": 0.60}, s)) for s in range(3)}
    out = per_seed(reports, "merged", "main", "pgd20")
    diffs = [out["per_seed"][str(s)]["difference"] for s in range(3)]
    assert all(d > 0 for d in diffs) and out["across_seeds"]["mean"] == pytest.approx(np.mean(diffs))
    assert out["across_seeds"]["n"] == 3 and out["per_seed"]["0"]["interval"] == "newcombe-hybrid-score"


def test_the_experiment_summary_names_the_primary_and_adjusts_the_rest(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    from fashion_summary import summary

    for s, name in enumerate(("dh", "dh-seed1", "dh-seed2")):
        rep = report({"main": 0.60, "second": 0.61, "merged": 0.62 + 0.005 * s}, s)
        (tmp_path / "reports" / name / "pgd20").mkdir(parents=True)
        (tmp_path / "reports" / name / "pgd20" / "report.json").write_text(json.dumps(rep))
    summary(tmp_path, "dh", [("dh", None, 0), ("dh-seed1", None, 1), ("dh-seed2", None, 2)], "merged-main@pgd20")
    doc = json.loads((tmp_path / "experiments/dh/summary.json").read_text())
    assert doc["primary_endpoint"] == "merged-main@pgd20" and set(doc["per_seed"]) == {"0", "1", "2"}
    primary = [r for r in doc["across_seeds"] if r["role"] == "primary"]
    assert [(r["comparison"], r["attack"]) for r in primary] == [("merged - main", "pgd20")]
    assert len(primary[0]["per_seed"]) == 3 and primary[0]["ci95"][0] <= primary[0]["mean"] <= primary[0]["ci95"][1]
    for rows in doc["per_seed"].values():
        assert all(r["holm_p"] >= r["mcnemar_p"] for r in rows if r["role"] == "secondary")
    assert (
        "Primary endpoint (named before the results): **merged-main@pgd20**"
        in (tmp_path / "experiments/dh/summary.md").read_text()
    )


def test_power_reproduces_the_reviewers_numbers():
    from training.robustness.seeds import seeds_for_power, t_interval, t_power

    out = t_interval([0.0159, 0.0056, 0.0196])  # the committed PGD-20 primary of seeds 0-2
    assert out["power_at_mean"] == pytest.approx(0.436, abs=0.005)  # issue 35: "about 0.44"
    assert t_power(out["mean"], out["sd"], 5) == pytest.approx(0.877, abs=0.005)  # "five seeds would give about 0.88"
    assert out["seeds_for_80pct_power"] == 5 and seeds_for_power(0.01, 0.0) is None


def test_the_experiment_puts_the_worst_case_primary_on_the_strong_phase_only():
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    from fashion_experiment import primary_of

    assert primary_of(("strong",), "merged-main@worst-case", "strong") == "merged-main@worst-case"
    assert primary_of(("clean", "pgd20"), "merged-main@worst-case", "pgd20") == "none"
    assert primary_of(("clean", "pgd20"), "merged-main@pgd20", "pgd20") == "merged-main@pgd20"
    assert primary_of(("clean", "pgd20", "joint", "agree"), "merged-main@pgd20", "adaptive") == "none"


def test_the_summary_names_a_run_whose_reports_are_of_different_artifacts(tmp_path):
    """A run retrained after its PGD-20 report (not bit-identical) must not pass as one training run."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    from fashion_summary import summary

    for s, name in enumerate(("dh", "dh-seed1")):
        for kind, version in (("pgd20", "aaa"), ("strong", "aaa" if s == 0 else "bbb")):
            rep = {**report({"main": 0.60, "second": 0.61, "merged": 0.62}, s), "artifact": {"version": version}}
            (tmp_path / "reports" / name / kind).mkdir(parents=True)
            (tmp_path / "reports" / name / kind / "report.json").write_text(json.dumps(rep))
    summary(tmp_path, "dh", [("dh", None, 0), ("dh-seed1", None, 1)], "merged-main@pgd20")
    doc = json.loads((tmp_path / "experiments/dh/summary.json").read_text())
    assert doc["artifact_versions"] == {
        "dh": {"pgd20": "aaa", "strong": "aaa"},
        "dh-seed1": {"pgd20": "aaa", "strong": "bbb"},
    }
    md = (tmp_path / "experiments/dh/summary.md").read_text()
    assert 'different training runs under one name (re-run `--only eval`): {"dh-seed1": {"pgd20": "aaa"' in md


def test_the_difference_of_two_models_over_their_runs_is_welchs_interval():
    a, b = [0.849, 0.850, 0.851, 0.853], [0.59, 0.61, 0.63]
    diff = difference_interval(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert diff["test"] == "Welch t over 4 and 3 runs" and diff["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert diff["ci95"] == pytest.approx([ref.low, ref.high])


def test_one_run_against_several_borrows_their_spread_and_one_each_has_no_interval():
    diff = difference_interval([0.70], [0.60, 0.62, 0.64])
    half = stats.t.ppf(0.975, 2) * 0.02 * (1 + 1 / 3) ** 0.5
    assert diff["test"] == "t over 3 runs and one" and diff["ci95"] == pytest.approx([0.08 - half, 0.08 + half])
    assert difference_interval([0.70], [0.60]) is None
