"""The strong suite so far, on hand-made reports: the drop below PGD-20 per run and mode, the models still without
the suite, and nothing at all once every training run has it (the axis is then the worst case itself)."""

from __future__ import annotations

import pytest

from tests.training.robustness.test_frontier import report
from training.robustness.frontier_report import build_frontier, write_frontier


def test_drop_per_run_and_mean_and_the_models_without_the_suite(tmp_path):
    design = {"main": {"clean": 0.80, "pgd20": 0.60, "worst-case": 0.55}, "merged": {"clean": 0.81, "pgd20": 0.62}}
    report(tmp_path / "dh-s0-report.json", "dh", "d0", design, strong=True, n=100)
    design1 = {"main": {"clean": 0.80, "pgd20": 0.64, "worst-case": 0.63}, "merged": {"clean": 0.8, "pgd20": 0.6}}
    report(tmp_path / "dh-s1-report.json", "dh", "d1", design1, strong=True, n=1000)
    report(tmp_path / "rob-report.json", "rob", "r", {"main": {"clean": 0.82, "pgd20": 0.65}})
    (panel,) = build_frontier([tmp_path])["panels"]
    assert panel["robust_attack"] == "pgd20"  # rob has no strong report: the axis stays PGD-20
    so_far = panel["strong_so_far"]
    assert so_far["missing"] == ["rob"]
    (row,) = so_far["rows"]  # merged has no worst case in either report: no row
    assert row["label"] == "dh:main" and row["runs"] == 2 and row["n"] == [100, 1000]
    assert row["drop_points_runs"] == pytest.approx([5.0, 1.0])
    assert row["drop_points"] == pytest.approx(3.0)
    assert row["pgd20"] == pytest.approx(0.62) and row["worst_case"] == pytest.approx(0.59)
    write_frontier([tmp_path], tmp_path / "out")
    md = (tmp_path / "out/frontier.md").read_text()
    assert "| dh:main | 2 | 100/1000 | 62.00 | 59.00 | 3.00 [5.00, 1.00] |" in md
    assert "No strong-suite report yet: rob." in md
    line = md.rstrip().splitlines()[-1]
    assert line.endswith("by 3.00 points for the designs' modes.")  # no mode at 0 %: nothing set aside


def test_the_axis_waits_for_every_training_run_not_only_every_model(tmp_path):
    strong = {"main": {"clean": 0.80, "pgd20": 0.60, "worst-case": 0.55}}
    report(tmp_path / "dh-s0-report.json", "dh", "d0", strong, strong=True)
    rob0, rob1 = {"clean": 0.82, "pgd20": 0.65, "worst-case": 0.6}, {"clean": 0.84, "pgd20": 0.63}
    report(tmp_path / "rob-s0-report.json", "rob", "r0", {"main": rob0}, strong=True)
    report(tmp_path / "rob-s1-report.json", "rob", "r1", {"main": rob1})
    (panel,) = build_frontier([tmp_path])["panels"]
    assert panel["robust_attack"] == "pgd20"  # rob's second run has no strong report: its point would drop it
    rob = next(p for p in panel["points"] if p["label"] == "rob:main")
    assert rob["runs"] == 2 and rob["robust"] == pytest.approx(0.64)
    assert panel["strong_so_far"]["missing"] == []
    write_frontier([tmp_path], tmp_path / "out")
    md = (tmp_path / "out/frontier.md").read_text()
    assert "until every training run has a strong-suite report" in md and "No strong-suite report yet" not in md
    report(tmp_path / "rob-s1-report.json", "rob", "r1", {"main": {**rob1, "worst-case": 0.62}}, strong=True)
    (panel,) = build_frontier([tmp_path])["panels"]
    assert panel["robust_attack"] == "worst-case"
    rob = next(p for p in panel["points"] if p["label"] == "rob:main")
    assert rob["robust"] == pytest.approx(0.61)


def test_nothing_when_every_model_or_no_model_has_the_suite(tmp_path):
    for model, worst in (("dh", 0.5), ("rob", 0.58)):
        row = {"main": {"clean": 0.8, "pgd20": 0.6, "worst-case": worst}}
        report(tmp_path / "a" / f"{model}-report.json", model, model[0], row, strong=True)
    (panel,) = build_frontier([tmp_path / "a"])["panels"]
    assert panel["robust_attack"] == "worst-case" and panel["strong_so_far"] is None
    report(tmp_path / "b" / "dh-report.json", "dh", "d", {"main": {"clean": 0.8, "pgd20": 0.6}})
    (panel,) = build_frontier([tmp_path / "b"])["panels"]
    assert panel["strong_so_far"] is None
    write_frontier([tmp_path / "b"], tmp_path / "out")
    assert "strong suite so far" not in (tmp_path / "out/frontier.md").read_text()


def test_verdict_line_gives_the_drops_and_which_dominations_survive_them(tmp_path):
    design = {
        "main": {"clean": 0.78, "pgd20": 0.60, "worst-case": 0.55},  # drop 5: rob's margin 4 + 5 - 4 = 5, kept
        "merged": {"clean": 0.79, "pgd20": 0.62, "worst-case": 0.61},  # drop 1: 2 + 1 - 4 = -1, not kept
        "second": {"clean": 0.95, "pgd20": 0.0, "worst-case": 0.0},  # nothing to lose: left out of the spans
    }
    report(tmp_path / "dh-report.json", "dh", "d", design, strong=True)
    report(
        tmp_path / "rob-report.json",
        "rob",
        "r",
        {"main": {"clean": 0.82, "pgd20": 0.64, "worst-case": 0.60}},
        strong=True,
    )
    report(tmp_path / "nat-report.json", "nat", "n", {"main": {"clean": 0.90, "pgd20": 0.0}})
    write_frontier([tmp_path], tmp_path / "out")
    line = (tmp_path / "out/frontier.md").read_text().rstrip().splitlines()[-1]
    assert line.startswith("**The strong suite so far** (2 of 3 training runs, on the first 100 test images; none yet")
    assert "for nat)" in line
    assert (
        "by 1.00-5.00 points (mean 3.00) for the designs' modes and 4.00 points for the single models (modes at 0 %"
        in line
    )
    assert "Of the 2 dominations under PGD-20 where both sides have it, 1 keep the single model ahead" in line
