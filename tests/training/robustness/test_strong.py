"""The strong suite in a report: per-image worst case, convergence ladders, the large-eps sanity row, the primary."""

from __future__ import annotations

import numpy as np
import pytest

from training.robustness.compare import unpack_correct
from training.robustness.evaluate import EvalSettings, evaluate
from training.robustness.settings import WORST_CASE
from training.robustness.worst_case import convergence, sanity_rows, worst_case

SUITE = ("clean", "pgd5", "margin5", "margin15", "margin5x2", "margin5x3", "system5", "evade5", "square")
"""The strong preset's shape at a budget the fast tier affords (AutoAttack's standard ensemble is the slow test)."""


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    run, artifact = tiny_run
    settings = EvalSettings(
        attacks=SUITE, n=8, batch_size=8, square_queries=20, curve=(), sanity=True, agree_targets=2, corruptions=False
    )
    return evaluate(artifact, run, settings, tmp_path_factory.mktemp("strong"))


def _correct(report, mode: str, name: str) -> np.ndarray:
    return unpack_correct(report["correct"][mode][name], report["data"]["n"])


def test_the_worst_case_is_never_above_any_part_per_image(report):
    for mode in ("main", "second", "merged"):
        worst = _correct(report, mode, WORST_CASE)
        for name in SUITE:
            assert not (worst & ~_correct(report, mode, name)).any(), (mode, name)  # right in worst => right in each
        assert report["worst_case"][mode]["graph"] == pytest.approx(worst.mean())
        assert report["worst_case"][mode]["graph"] <= min(
            r["graph"] for r in report["results"][mode]["attacks"].values()
        )
        assert "transfer" in report["worst_case"][mode]["over"]
    assert "**worst case**" in (report_md := _markdown(report)) and "Worst case: per image" in report_md


def test_the_large_eps_row_reaches_zero_and_convergence_is_tabled(report):
    for mode, row in report["sanity"].items():
        assert row["graph"] == 0.0 and row["eps"] == 1.0 and row["n"] == 8, mode
    assert not [w for w in report["warnings"] if "where any image is reachable" in w]
    assert set(report["craft_seconds"]["merged"]) == set(SUITE)  # timing beside the results, never inside them
    assert all(s >= 0 for row in report["craft_seconds"].values() for s in row.values())
    assert all("craft_seconds" not in r for row in report["results"].values() for r in row["attacks"].values())
    ladders = report["convergence"]["merged"]
    assert [r["attack"] for r in ladders["steps"]] == ["margin5", "margin15"]
    assert [r["attack"] for r in ladders["restarts"]] == ["margin5", "margin5x2", "margin5x3"]
    for rungs in ladders.values():
        assert all(r["graph"] == report["results"]["merged"]["attacks"][r["attack"]]["graph"] for r in rungs)
    from training.robustness.suite import CONVERGENCE, STRONG
    from training.robustness.worst_case import ladders as find

    assert find(list(STRONG)) == {k: list(v) for k, v in CONVERGENCE.items()}


def test_worst_case_is_compared_paired_and_a_suite_with_autoattack_makes_it_primary(report):
    c = report["comparisons"][WORST_CASE]["merged-main"]
    assert c["ci95"][0] <= c["difference"] <= c["ci95"][1] and c["role"] == "secondary"
    from training.robustness.scoring import default_primary

    assert default_primary(("clean", "pgd20", "autoattack")) == f"merged-main@{WORST_CASE}"
    assert default_primary(("clean", "autoattack")) == "merged-main@autoattack"
    assert EvalSettings(attacks=("strong",), primary=f"merged-main@{WORST_CASE}").primary.endswith(WORST_CASE)


def test_worst_case_convergence_and_sanity_on_hand_made_vectors():
    correct = {
        "clean": np.array([1, 1, 1, 0], bool),
        "a": np.array([1, 0, 1, 0], bool),
        "b": np.array([1, 1, 0, 0], bool),
    }
    assert worst_case(correct, None).tolist() == [True, False, False, False]
    assert worst_case(correct, np.array([0, 1, 1, 1], bool)).tolist() == [False, False, False, False]
    rows = {
        "m": {
            "attacks": {
                a: {"graph": g, "graph_ci95": [0, 1]}
                for a, g in (("margin20", 0.50), ("margin100", 0.45), ("margin500", 0.40))
            }
        }
    }
    table, warnings = convergence(rows, n=1000)
    assert [r["attack"] for r in table["m"]["steps"]] == ["margin20", "margin100", "margin500"]
    assert len(warnings) == 1 and "not converged in steps: margin500 is 5.00 points below margin100" in warnings[0]
    rows["m"]["attacks"]["margin500"]["graph"] = 0.448  # 0.2 points: within the tolerance
    assert convergence(rows, n=1000)[1] == []
    sanity, warn = sanity_rows({"m": np.array([0, 1, 0, 0], bool)})
    assert sanity["m"]["graph"] == 0.25 and "leaves 25.00% (1 of 4 images)" in warn[0]


def _markdown(report) -> str:
    from training.robustness.report import markdown

    return markdown(report)


@pytest.mark.slow
def test_the_strong_preset_end_to_end(tiny_run, tmp_path):
    """``--attacks strong`` as a user runs it (AutoAttack's standard version included), on a few images."""
    run, artifact = tiny_run
    rep = evaluate(
        artifact,
        run,
        EvalSettings(
            attacks=("strong",), n=4, batch_size=4, square_queries=40, agree_targets=1, corruptions=False, curve=()
        ),
        tmp_path / "rep",
    )
    assert (
        "autoattack" in rep["attacks"]
        and "evade100" in rep["attacks"]
        and rep["primary_endpoint"] == f"merged-main@{WORST_CASE}"
    )
    assert set(rep["sanity"]) == {"main", "second", "merged"}
    assert set(rep["convergence"]["merged"]) == {"steps", "restarts"}
    for mode in rep["results"]:
        assert rep["worst_case"][mode]["graph"] <= rep["results"][mode]["attacks"]["autoattack"]["graph"]
