import json
import shutil

import pytest

from export.artifact import export_artifact
from training.pipeline import train_recipe
from training.recipes import load_recipe
from training.robustness.evaluate import EvalSettings, EvaluationError, evaluate
from tests.training.conftest import TINY

ATTACKS = ("clean", "pgd20", "pgd10x2", "apgd-ce", "apgd-dlr-t", "autoattack", "square")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalrun")
    recipe = load_recipe("digits", TINY + ["stage1.epochs=3", "stage1.method=natural"])
    run = train_recipe(recipe, root / "run", device="cpu")
    export_artifact(run, root / "artifact", parity_n=16)
    return run, root / "artifact"


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    run, artifact = tiny_run
    settings = EvalSettings(attacks=ATTACKS, n=24, batch_size=12, square_queries=50, curve=(0.0, 1.0, 2.0))
    return evaluate(artifact, run, settings, tmp_path_factory.mktemp("report"))


def test_every_attack_is_scored_on_graph_and_twin_and_never_beats_clean(report):
    for mode in ("main", "second", "merged"):
        row = report["results"][mode]
        clean = row["attacks"]["clean"]
        assert clean["disagreements"] == 0 and row["twin_graph_max_abs_diff"] < 1e-4
        for name in ATTACKS:
            assert row["attacks"][name]["graph"] <= clean["graph"] + 1e-9, (mode, name)
        assert row["attacks"]["autoattack"]["graph"] <= row["attacks"]["apgd-ce"]["graph"] + 1e-9
        assert [p["eps"] for p in row["curve"]] == [0.0, 0.1, 0.2]
        assert row["curve"][0]["graph"] == clean["graph"]


def test_report_records_transfer_versions_and_hashes(report):
    assert set(report["transfer"]) == {"main", "second", "merged"}
    assert report["versions"]["onnxruntime"] and report["seed"] == 0 and report["eps"] == pytest.approx(0.1)
    assert len(report["artifact"]["hashes"]) == 3


def test_report_written_to_disk(tiny_run, tmp_path):
    run, artifact = tiny_run
    evaluate(artifact, run, EvalSettings(attacks=("clean", "pgd20"), n=16, batch_size=16, transfer=False, curve=(0.0, 1.0)),
             tmp_path / "rep")
    md = (tmp_path / "rep/report.md").read_text()
    assert "| main |" in md and "pgd20" in md
    assert json.loads((tmp_path / "rep/report.json").read_text())["results"]["merged"]["attacks"]["pgd20"]
    assert (tmp_path / "rep/robustness.png").stat().st_size > 1000
    assert list((tmp_path / "rep/cache").glob("main_pgd20_*.safetensors"))  # resumable per chunk


def test_a_tampered_artifact_is_refused(tiny_run, tmp_path):
    run, artifact = tiny_run
    shutil.copytree(artifact, tmp_path / "a")
    data = bytearray((tmp_path / "a/second.onnx").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "a/second.onnx").write_bytes(bytes(data))
    with pytest.raises(EvaluationError, match="second.onnx: sha256 does not match"):
        evaluate(tmp_path / "a", run, EvalSettings(n=4), tmp_path / "rep")


def test_a_run_whose_weights_do_not_match_the_graph_is_refused(tiny_run, tmp_path):
    run, artifact = tiny_run
    other = train_recipe(load_recipe("digits", TINY + ["seed=7"]), tmp_path / "other", device="cpu")
    with pytest.raises(EvaluationError, match="do not match the graph"):
        evaluate(artifact, other, EvalSettings(n=4), tmp_path / "rep")


def test_unknown_attack_or_mode_is_refused():
    with pytest.raises(ValueError, match="unknown attack 'fgsm'"):
        EvalSettings(attacks=("fgsm",))
    with pytest.raises(ValueError, match="unknown mode 'both'"):
        EvalSettings(modes=("both",))


def test_without_a_curve_no_plot_is_written(tiny_run, tmp_path):
    run, artifact = tiny_run
    evaluate(artifact, run, EvalSettings(attacks=("clean",), n=8, batch_size=8, transfer=False, curve=()), tmp_path / "rep")
    assert (tmp_path / "rep/report.md").is_file() and not (tmp_path / "rep/robustness.png").exists()
