"""``dhat eval --card``: the card copies its report's numbers and binds them to the graphs it measured."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from typer.testing import CliRunner

from dhat_serve.card import CARD_FILE, load_card
from dhat_serve.cli import app
from dhat_serve.manifest import load_manifest
from training.robustness.card import attack_budget, write_card


def test_each_attack_says_its_steps_restarts_or_queries():
    assert attack_budget("pgd100x5", 5000) == {
        "method": "PGD, cross-entropy, last iterate",
        "steps": 100,
        "restarts": 5,
    }
    assert attack_budget("margin500", 0)["steps"] == 500 and attack_budget("margin500", 0)["restarts"] == 1
    assert attack_budget("system100x3", 0)["restarts"] == 3 and attack_budget("evade100", 0)["steps"] == 100
    assert attack_budget("square", 1000) == {"method": attack_budget("square", 1)["method"], "queries": 1000}
    assert "AutoAttack standard" in attack_budget("autoattack", 0)["method"]
    assert attack_budget("clean", 0) == {"method": "no attack"}


def test_eval_writes_a_card_of_its_report_bound_to_the_graphs(tiny_run, tmp_path):
    run, artifact = tiny_run
    copy = tmp_path / "artifact"
    shutil.copytree(artifact, copy)
    out = tmp_path / "report"
    args = ["eval", str(copy), "--run", str(run), "--attacks", "clean,pgd5", "--n", "12", "--batch-size", "12"]
    result = CliRunner().invoke(app, [*args, "--no-curve", "--no-transfer", "--out", str(out), "--card"])
    assert result.exit_code == 0, result.output
    assert f"robustness card: {copy / CARD_FILE}" in result.output.replace("\n", "")
    report = json.loads((out / "report.json").read_text())
    card = load_card(copy, load_manifest(copy))
    assert card.doc["report"]["sha256"] == hashlib.sha256((out / "report.json").read_bytes()).hexdigest()
    assert card.doc["graphs"] == report["artifact"]["hashes"] and card.doc["eps"] == report["eps"]
    assert card.doc["data"] == {k: report["data"][k] for k in ("dataset", "split", "n", "labels_sha256")}
    for mode, row in report["results"].items():
        entry = card.of(mode)
        assert [(a["attack"], a["accuracy"], a["ci95"]) for a in entry["attacks"]] == [
            (name, r["graph"], r["graph_ci95"]) for name, r in row["attacks"].items()
        ]
        assert entry["worst_case"]["accuracy"] == report["worst_case"][mode]["graph"]
        assert entry["robustbench"]["clean_acc"] == f"{100 * row['attacks']['clean']['graph']:.2f}"
        assert entry["robustbench"]["threat_model"] == "Linf" and entry["robustbench"]["autoattack_acc"] is None
    assert card.doc["versions"]["torch"] and card.doc["date"] and card.doc["evaluated_on"]["device"] == "cpu"


def test_a_report_of_other_graphs_makes_no_card(tiny_run, tmp_path):
    _, artifact = tiny_run
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"artifact": {"hashes": {"main": "00" * 32}}}))
    with pytest.raises(ValueError, match="measured other graphs than"):
        write_card(artifact, report)
    assert not (artifact / CARD_FILE).exists()
