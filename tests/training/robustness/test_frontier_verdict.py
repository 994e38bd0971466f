"""The frontier's verdict on hand-made reports: each design's modes against the single models, ties, margins
intervals, the switch beside the pair's, and the sentence over all designs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dhat_serve.cli import app
from tests.training.robustness.test_frontier import report
from training.robustness.frontier_report import build_frontier, write_frontier
from training.robustness.frontier_verdict import axes_beyond_noise, verdict_lines


def write_panel(tmp_path, design: dict[str, dict[str, float]]) -> None:
    """A design `dh` (the given modes) beside a natural and a robust single model (Wilson-like +-0.05 whiskers)."""
    report(tmp_path / "dh-report.json", "dh", "d", design)
    report(tmp_path / "nat-report.json", "nat", "n", {"main": {"clean": 0.92, "pgd20": 0.0}})
    report(tmp_path / "rob-report.json", "rob", "r", {"main": {"clean": 0.80, "pgd20": 0.62}})


def test_each_mode_is_placed_against_the_single_models_only(tmp_path):
    write_panel(
        tmp_path,
        {
            "main": {"clean": 0.92, "pgd20": 0.0},  # exactly the natural model: not dominated, but equal
            "second": {"clean": 0.85, "pgd20": 0.40},  # nobody beats it on both axes
            "merged": {"clean": 0.68, "pgd20": 0.55},  # rob: +12 clean (separated), +7 robust
        },
    )
    (panel,) = build_frontier([tmp_path], ("nat+rob",))["panels"]
    verdict = panel["verdict"]
    assert verdict["alternatives"] == ["nat:main", "rob:main"]
    (design,) = verdict["designs"]
    modes = {m["mode"]: m for m in design["modes"]}
    assert modes["main"]["beaten_by"] == [] and modes["main"]["equal_to"] == ["nat:main"]
    assert modes["second"]["beaten_by"] == [] and modes["second"]["equal_to"] == []
    assert modes["second"]["within_noise_of"] == []  # 40 % against nat's 0 % under PGD-20: ahead beyond noise
    (beaten,) = modes["merged"]["beaten_by"]
    assert beaten["by"] == "rob:main" and beaten["clear"] and beaten["beyond_noise"] == ["clean"]
    assert beaten["clean_points"] == pytest.approx(12) and beaten["robust_points"] == pytest.approx(7)
    assert not design["dominated"] and not verdict["every_design_dominated"]
    lines = verdict_lines({"panels": [panel]})
    text = "\n".join(lines)
    assert (
        "`merged` 68.00 / 55.00 % dominated by rob:main (+12.00 clean, +7.00 robust points; clean ahead beyond "
        "noise, robust within it)" in text
    )
    assert "`main` 92.00 / 0.00 % is nat:main itself (the same graphs or scores): nothing it lacks" in text
    assert "Its switch `main` → `merged`: -24.00 clean / +55.00 robust points, +2.000 ms at batch 1" in text
    assert "the pair's (nat + rob): -12.00 / +62.00" in text
    assert (
        "**Not dominated by any single model**: dh:second (1 of 3 modes dominated, 1 beyond noise (95 %) on "
        "at least one axis, 0 on both; a single model itself: dh:main is nat:main)." in text
    )


def test_a_design_beaten_everywhere_is_said_so_and_overlap_is_not_called_clear(tmp_path):
    write_panel(
        tmp_path,
        {"main": {"clean": 0.78, "pgd20": 0.60}, "merged": {"clean": 0.79, "pgd20": 0.61}},  # rob within 0.05
    )
    doc = write_frontier([tmp_path], tmp_path / "out")
    (design,) = doc["panels"][0]["verdict"]["designs"]
    assert design["dominated"] and doc["panels"][0]["verdict"]["every_design_dominated"]
    assert [m["beaten_by"][0]["clear"] for m in design["modes"]] == [False, False]
    md = (tmp_path / "out/frontier.md").read_text()
    assert "## Verdict" in md and "within noise on both axes" in md
    assert (
        "**Every mode of every design is dominated by a single model or equal to one** (2 of 2 modes dominated, 0 "
        "beyond noise (95 %) on at least one axis, 0 on both)" in md
    )
    assert json.loads((tmp_path / "out/frontier.json").read_text())["panels"][0]["verdict"]["every_design_dominated"]


def test_a_mode_equal_to_a_single_model_offers_nothing_it_lacks(tmp_path):
    write_panel(tmp_path, {"main": {"clean": 0.92, "pgd20": 0.0}, "merged": {"clean": 0.68, "pgd20": 0.55}})
    (panel,) = build_frontier([tmp_path])["panels"]
    assert panel["verdict"]["designs"][0]["dominated"] and panel["verdict"]["every_design_dominated"]
    assert (
        "(1 of 2 modes dominated, 1 beyond noise (95 %) on at least one axis, 0 on both; a single model "
        "itself: dh:main is nat:main)" in ("\n".join(verdict_lines({"panels": [panel]})))
    )


def test_a_mode_no_model_beats_but_within_noise_of_one_offers_nothing_shown(tmp_path):
    # natural-sat's main head is a natural model trained on another processor: not the same graphs, a point estimate
    # a tenth of a point away. Not dominated, but nothing the data show that the natural model lacks.
    write_panel(tmp_path, {"main": {"clean": 0.93, "pgd20": 0.01}, "merged": {"clean": 0.68, "pgd20": 0.55}})
    (panel,) = build_frontier([tmp_path])["panels"]
    verdict = panel["verdict"]
    main = next(m for m in verdict["designs"][0]["modes"] if m["mode"] == "main")
    assert main["beaten_by"] == [] and main["equal_to"] == [] and main["within_noise_of"] == ["nat:main"]
    assert not verdict["every_design_dominated"] and verdict["every_design_matched"]
    text = "\n".join(verdict_lines({"panels": [panel]}))
    assert (
        "`main` 93.00 / 1.00 % on the alternatives' front, but within noise of nat:main on both axes: nothing shown "
        "that it lacks" in text
    )
    assert (
        "**Every mode of every design is dominated by a single model, equal to one, or within noise of one on both "
        "axes** (1 of 2 modes dominated, 1 beyond noise (95 %) on at least one axis, 0 on both; within noise on both "
        "axes: dh:main and nat:main): no design offers a point that the data show one model, or two served side by "
        "side, lacks." in text
    )


def test_a_mode_with_a_single_models_graphs_is_equal_to_it_whatever_seeds_each_has(tmp_path):
    # natural-trades' main head is the natural model trained with the same seed: the same ONNX graph. With one more
    # seed of the natural model the two means differ; the verdict must still call them the same model.
    write_panel(tmp_path, {"main": {"clean": 0.90, "pgd20": 0.0}, "merged": {"clean": 0.68, "pgd20": 0.55}})
    report(tmp_path / "nat-1-report.json", "nat", "n1", {"main": {"clean": 0.90, "pgd20": 0.0}})
    for name, hashes in (("dh", {"main": "h1", "merged": "m0"}), ("nat", {"main": "h0"}), ("nat-1", {"main": "h1"})):
        path = tmp_path / f"{name}-report.json"
        doc = json.loads(path.read_text())
        doc["artifact"]["hashes"] = hashes
        path.write_text(json.dumps(doc))
    (panel,) = build_frontier([tmp_path])["panels"]
    main = next(m for m in panel["verdict"]["designs"][0]["modes"] if m["mode"] == "main")
    assert main["clean"] < next(p["clean"] for p in panel["points"] if p["label"] == "nat:main")  # 90 % against 91
    assert main["equal_to"] == ["nat:main"] and main["beaten_by"] == []
    assert panel["verdict"]["every_design_dominated"]


def test_no_alternative_means_no_verdict(tmp_path):
    report(
        tmp_path / "dh-report.json",
        "dh",
        "d",
        {"main": {"clean": 0.9, "pgd20": 0.5}, "merged": {"clean": 0.8, "pgd20": 0.6}},
    )
    doc = build_frontier([tmp_path])
    assert doc["panels"][0]["verdict"]["designs"] and not doc["panels"][0]["verdict"]["every_design_dominated"]
    assert verdict_lines(doc) == []


def test_one_run_each_is_beyond_noise_only_where_the_wilson_intervals_do_not_meet():
    a = {"clean_ci95": [0.80, 0.84], "robust_ci95": [0.60, 0.70]}
    assert axes_beyond_noise(a, {"clean_ci95": [0.70, 0.79], "robust_ci95": [0.65, 0.75]}) == ["clean"]
    assert axes_beyond_noise(a, {"clean_ci95": [0.70, 0.79], "robust_ci95": [0.50, 0.59]}) == ["clean", "robust"]
    assert axes_beyond_noise(a, {"clean_ci95": [0.70, 0.80], "robust_ci95": [0.65, 0.75]}) == []  # touching
    assert axes_beyond_noise(a, {"clean_ci95": None, "robust_ci95": None}) == []


def test_several_runs_are_compared_over_runs_not_by_their_one_run_intervals():
    # Welch over 3 and 3 runs: clean 85.0 against 80.0 (spread 0.1) is far beyond noise; robust 62 against 61
    # (spread 2) is not
    a = {"clean_runs": [0.849, 0.850, 0.851], "robust_runs": [0.60, 0.62, 0.64]}
    b = {"clean_runs": [0.799, 0.800, 0.801], "robust_runs": [0.59, 0.61, 0.63]}
    assert axes_beyond_noise(a, b) == ["clean"]


def test_a_dominance_beyond_noise_on_both_axes_is_said_so(tmp_path):
    write_panel(tmp_path, {"main": {"clean": 0.60, "pgd20": 0.40}, "merged": {"clean": 0.79, "pgd20": 0.61}})
    text = "\n".join(verdict_lines(build_frontier([tmp_path])))
    assert (
        "`main` 60.00 / 40.00 % dominated by rob:main (+20.00 clean, +22.00 robust points; ahead beyond noise on both "
        "axes)" in text
    )
    assert "2 of 2 modes dominated, 1 beyond noise (95 %) on at least one axis, 1 on both" in text


def test_the_cli_prints_the_verdict(tmp_path):
    write_panel(tmp_path, {"main": {"clean": 0.78, "pgd20": 0.60}, "merged": {"clean": 0.79, "pgd20": 0.61}})
    result = CliRunner().invoke(app, ["frontier", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "Every mode of every design is dominated by a single model or equal to one (2 of 2" in result.output
