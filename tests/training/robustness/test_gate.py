"""The rollout gate: paired per mode and attack, non-inferiority at a margin, refusals, exit codes, the card."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from dhat_serve.card import CARD_FILE, load_card
from dhat_serve.cli import app
from dhat_serve.manifest import load_manifest
from training.robustness.compare import pack_correct
from training.robustness.evaluate import EvaluationError
from training.robustness.gate import Side, cells, check_comparable, missing_modes


def hand_report(correct: dict[str, dict[str, np.ndarray]]) -> dict:
    """The fields of a report the gate reads, from per-image vectors (hand-made, not a model's)."""
    n = len(next(iter(next(iter(correct.values())).values())))
    return {
        "artifact": {"name": "a", "version": "1"},
        "data": {"dataset": "digits", "n": n, "labels_sha256": "ab"},
        "eps": 0.1,
        "results": {m: {"attacks": {a: {} for a in row if a != "worst-case"}} for m, row in correct.items()},
        "correct": {m: {a: pack_correct(v) for a, v in row.items()} for m, row in correct.items()},
    }


def test_a_cell_passes_when_its_paired_lower_bound_is_above_minus_the_margin():
    rng = np.random.default_rng(0)
    base = rng.random(2000) < 0.6
    worse = base.copy()
    worse[np.flatnonzero(base)[:100]] = False  # 100 of 2,000 images lost: -5 points
    current = hand_report({"main": {"clean": base, "pgd20": base, "worst-case": base}})
    same = cells(current, current, margin=1.0)
    assert [(r["attack"], r["pass"]) for r in same] == [("clean", True), ("pgd20", True), ("worst-case", True)]
    assert same[0]["difference"] == 0 and -0.01 < same[0]["identical_lower_bound"] < 0
    candidate = hand_report({"main": {"clean": base, "pgd20": worse, "worst-case": worse}})
    rows = {r["attack"]: r for r in cells(candidate, current, margin=1.0)}
    assert rows["clean"]["pass"] and not rows["pgd20"]["pass"] and not rows["worst-case"]["pass"]
    assert rows["pgd20"]["difference"] == pytest.approx(-0.05) and rows["pgd20"]["ci95"][1] < 0
    assert all(r["pass"] for r in cells(candidate, current, margin=10.0))
    dual = hand_report({m: {"clean": base, "worst-case": base} for m in ("main", "second", "merged")})
    assert [(r["mode"], r["pass"]) for r in missing_modes(current, dual)] == [("second", False), ("merged", False)]
    assert missing_modes(dual, current) == []  # a candidate may add modes
    other = hand_report({"main": {"clean": base[:1000], "pgd20": base[:1000], "worst-case": base[:1000]}})
    with pytest.raises(EvaluationError, match="different test images"):
        cells(other, current, margin=1.0)


def test_artifacts_of_another_eps_or_other_classes_are_refused_naming_which(tiny_run, tmp_path):
    run, artifact = tiny_run
    assert check_comparable(Side(artifact, run), Side(artifact, run), None) == pytest.approx(0.1)
    other_run = tmp_path / "run"
    shutil.copytree(run, other_run, ignore=shutil.ignore_patterns("stage*"))
    recipe = other_run / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("eps: 0.1", "eps: 0.2"))
    with pytest.raises(EvaluationError, match=r"differ in eps .*: 0.1, .*: 0.2"):
        check_comparable(Side(artifact, run), Side(artifact, other_run), None)
    other = tmp_path / "artifact"
    shutil.copytree(artifact, other)
    doc = json.loads((other / "manifest.json").read_text())
    doc["class_names"] = [f"c{i}" for i in range(10)]
    (other / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(EvaluationError, match="differ in classes"):
        check_comparable(Side(artifact, run), Side(other, run), None)


def test_the_command_exits_0_on_pass_1_on_fail_2_on_error_and_writes_the_card(tiny_run, tmp_path):
    run, artifact = tiny_run
    candidate = tmp_path / "candidate"
    shutil.copytree(artifact, candidate)
    base = ["gate", str(candidate), "--run", str(run), "--against", str(artifact), "--against-run", str(run)]
    base += ["--attacks", "clean,pgd5", "--n", "24", "--batch-size", "24", "--out", str(tmp_path / "gate")]
    passed = CliRunner().invoke(app, [*base, "--margin", "50", "--card"], env={"COLUMNS": "200"})
    assert passed.exit_code == 0, passed.output
    doc = json.loads((tmp_path / "gate" / "gate.json").read_text())
    assert doc["passed"] and len(doc["cells"]) == 9  # 3 modes x (clean, pgd5, worst case)
    assert {(c["mode"], c["attack"]) for c in doc["cells"]} >= {("merged", "pgd5"), ("main", "worst-case")}
    card = load_card(candidate, load_manifest(candidate))  # written on pass, bound to the candidate's graphs
    assert card.of("merged")["attacks"][1]["attack"] == "pgd5" and card.doc["data"]["n"] == 24
    (candidate / CARD_FILE).unlink()
    failed = CliRunner().invoke(app, [*base, "--margin", "0", "--card"], env={"COLUMNS": "200"})
    assert failed.exit_code == 1 and "FAIL" in failed.output  # identical answers cannot beat a zero margin
    assert re.search(r"main / clean", failed.output) and not (candidate / CARD_FILE).exists()
    error = CliRunner().invoke(app, [*base, "--margin", "-1"])
    assert error.exit_code == 2 and "--margin must be >= 0" in error.output
    missing = CliRunner().invoke(app, [*base[:3], "/nope", *base[4:]])
    assert missing.exit_code == 2 and "--run /nope: no such run directory" in missing.output
