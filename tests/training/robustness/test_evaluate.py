import json
import shutil

import pytest

from tests.training.conftest import TINY
from training.pipeline import train_recipe
from training.recipes import load_recipe
from training.robustness.adaptive import is_system_attack
from training.robustness.evaluate import EvalSettings, EvaluationError, evaluate

ATTACKS = ("clean", "pgd20", "pgd10x2", "apgd-ce", "apgd-dlr-t", "square", "joint", "agree")
"""The fast tier's attacks; AutoAttack's standard ensemble (half a minute even here) is the slow test below."""


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    run, artifact = tiny_run
    settings = EvalSettings(attacks=ATTACKS, n=6, batch_size=3, square_queries=50, curve=(0.0, 1.0, 2.0))
    return evaluate(artifact, run, settings, tmp_path_factory.mktemp("report"))


def test_every_attack_is_scored_on_graph_and_twin_and_never_beats_clean(report):
    for mode in ("main", "second", "merged"):
        row = report["results"][mode]
        clean = row["attacks"]["clean"]
        assert clean["disagreements"] == 0 and row["twin_graph_max_abs_diff"] < 1e-4
        for name in ATTACKS:  # a system attack aims at the three outputs at once: one of them may even gain
            if not is_system_attack(name):
                assert row["attacks"][name]["graph"] <= clean["graph"] + 1e-9, (mode, name)
        assert [p["eps"] for p in row["curve"]] == [0.0, 0.1, 0.2]
        assert row["curve"][0]["graph"] == clean["graph"]


@pytest.mark.slow
def test_autoattack_is_scored_and_never_beats_its_own_apgd_ce(tiny_run, tmp_path):
    run, artifact = tiny_run
    rep = evaluate(
        artifact,
        run,
        EvalSettings(attacks=("clean", "apgd-ce", "autoattack"), n=6, batch_size=3, transfer=False, curve=()),
        tmp_path / "rep",
    )
    for mode, row in rep["results"].items():
        aa = row["attacks"]["autoattack"]
        assert aa["graph"] <= row["attacks"]["apgd-ce"]["graph"] + 1e-9, mode
        assert row["attacks"]["apgd-ce"]["graph"] <= row["attacks"]["clean"]["graph"] + 1e-9, mode
        assert aa["graph_ci95"][0] <= aa["graph"] <= aa["graph_ci95"][1]


def test_report_records_transfer_versions_and_hashes(report):
    assert set(report["transfer"]) == {"main", "second", "merged"}
    assert report["versions"]["onnxruntime"] and report["seed"] == 0 and report["eps"] == pytest.approx(0.1)
    assert len(report["artifact"]["hashes"]) == 3


def test_report_records_what_each_mode_costs_to_serve(report, tiny_run):
    # dhat frontier reads these instead of the artifact: parameters, bytes and latency at batch 1 and 32
    _, artifact = tiny_run
    cost = report["cost"]
    assert cost["provider"] == "CPUExecutionProvider" and "cores" in cost["machine"]
    sizes = {m: (artifact / f"{m}.onnx").stat().st_size for m in ("main", "second", "merged")}
    assert cost["artifact_bytes"] == sum(sizes.values())
    for mode, row in cost["modes"].items():
        assert row["onnx_bytes"] == sizes[mode] and row["parameters"] > 0
        lat = row["latency"]
        assert lat["1"]["request_ms"] == lat["1"]["per_image_ms"] > 0
        assert lat["32"]["per_image_ms"] == pytest.approx(lat["32"]["request_ms"] / 32)
    # the merged graph holds the trunk, both heads and the merger: more than either head's graph
    assert cost["modes"]["merged"]["parameters"] > max(cost["modes"][m]["parameters"] for m in ("main", "second"))


def test_report_written_to_disk(tiny_run, tmp_path):
    run, artifact = tiny_run
    evaluate(
        artifact,
        run,
        EvalSettings(attacks=("clean", "pgd20"), n=16, batch_size=16, transfer=False, curve=(0.0, 1.0)),
        tmp_path / "rep",
    )
    md = (tmp_path / "rep/report.md").read_text()
    assert "| main |" in md and "pgd20" in md and "Serving cost per graph" in md
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
    evaluate(
        artifact, run, EvalSettings(attacks=("clean",), n=8, batch_size=8, transfer=False, curve=()), tmp_path / "rep"
    )
    assert (tmp_path / "rep/report.md").is_file() and not (tmp_path / "rep/robustness.png").exists()


def test_every_accuracy_carries_a_95_percent_interval_and_merged_is_compared_paired(report):
    for mode, row in report["results"].items():
        for name, r in row["attacks"].items():
            lo, hi = r["graph_ci95"]
            assert 0 <= lo <= r["graph"] <= hi <= 1, (mode, name)
            assert r["twin_ci95"][0] <= r["twin"] <= r["twin_ci95"][1]
        assert all(p["ci95"][0] <= p["graph"] <= p["ci95"][1] for p in row["curve"])
    for name in ATTACKS:
        for head in ("main", "second"):
            c = report["comparisons"][name][f"merged-{head}"]
            merged, other = (
                report["results"]["merged"]["attacks"][name]["graph"],
                report["results"][head]["attacks"][name]["graph"],
            )
            assert c["difference"] == pytest.approx(merged - other)
            assert c["ci95"][0] <= c["difference"] <= c["ci95"][1] and 0 <= c["mcnemar_p"] <= 1
            assert c["verdict"] in ("higher", "lower", "no significant difference")
            assert c["role"] == ("primary" if (name, head) == ("apgd-dlr-t", "main") else "secondary")
            assert c["holm_p"] >= c["mcnemar_p"]
    assert report["primary_endpoint"] == "merged-main@apgd-dlr-t"  # the rule: AutoAttack, else APGD-DLR-T, ...
    ci = report["transfer_ci95"]["main"]["second"]
    assert ci[0] <= report["transfer"]["main"]["second"] <= ci[1]


def test_head_disagreement_table_and_where_the_attacks_ran(report):
    table = report["head_disagreement"]
    assert 0 <= table["clean"]["rate"] <= 1 and table["clean"]["n"] == 6
    assert set(table["attacks"]) == set(ATTACKS) - {"clean"}
    row = table["attacks"]["pgd20"]["merged"]
    assert row["adversarial"]["n"] == 6
    assert row["detection"]["n"] == row["fooled"] if row["fooled"] else row["detection"] is None  # no rate of nothing
    assert report["device"] == "cpu" and report["world_size"] == 1 and report["attack_precision"] == "fp32"
    assert report["providers"]["merged"][0] == "CPUExecutionProvider"


def test_the_whole_test_split_by_default_and_a_pgd_step_in_the_attack_name(tiny_run, tmp_path):
    run, artifact = tiny_run
    rep = evaluate(
        artifact,
        run,
        EvalSettings(attacks=("clean", "pgd5@0.02"), batch_size=270, transfer=False, curve=()),
        tmp_path / "rep",
    )
    assert rep["data"]["n"] == 270  # digits' whole test split
    assert (
        rep["results"]["main"]["attacks"]["pgd5@0.02"]["graph"] <= rep["results"]["main"]["attacks"]["clean"]["graph"]
    )


def test_the_cache_key_holds_the_graph_hash(tiny_run, report, tmp_path):
    run, artifact = tiny_run
    evaluate(
        artifact, run, EvalSettings(attacks=("pgd20",), n=8, batch_size=8, transfer=False, curve=()), tmp_path / "rep"
    )
    names = [p.name for p in (tmp_path / "rep/cache").glob("*.safetensors")]
    for mode, sha in report["artifact"]["hashes"].items():
        assert any(n.startswith(f"{mode}_pgd20_") and n.endswith(f"_{sha[:16]}.safetensors") for n in names), (
            mode,
            names,
        )


def test_asking_for_cuda_without_one_is_a_clear_error(tiny_run, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal is for machines without it")
    run, artifact = tiny_run
    with pytest.raises(EvaluationError, match="--device cuda: torch sees no CUDA device here; use --device cpu"):
        evaluate(artifact, run, EvalSettings(n=4, device="cuda"), tmp_path / "rep")
    with pytest.raises(ValueError, match="use cpu, cuda or cuda:N"):
        EvalSettings(device="tpu")


def _torchrun_eval(nproc: int, run, artifact, out):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "dhat_serve.cli",
        "eval",
        str(artifact),
        "--run-dir",
        str(run),
        "--attacks",
        "clean,pgd10,square",
        "--n-images",
        "36",
        "--batch-size",
        "12",
        "--square-queries",
        "20",
        "--device",
        "cpu",
        "--no-curve",
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_a_two_process_sharded_run_equals_a_one_process_run(tiny_run, tmp_path):
    run, artifact = tiny_run
    one = _torchrun_eval(1, run, artifact, tmp_path / "one")
    two = _torchrun_eval(2, run, artifact, tmp_path / "two")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    for key in ("results", "comparisons", "transfer", "head_disagreement"):
        assert one[key] == two[key], key
    assert len(list((tmp_path / "two/cache").glob("main_pgd10_*"))) == 3  # 36 images in chunks of 12, from both ranks


def test_a_system_attack_is_crafted_once_and_scored_on_every_mode(tiny_run, tmp_path):
    run, artifact = tiny_run
    rep = evaluate(
        artifact,
        run,
        EvalSettings(attacks=("pgd20", "joint"), n=4, batch_size=4, transfer=False, curve=(), corruptions=False),
        tmp_path / "rep",
    )
    names = sorted(p.name.split("_eps")[0] for p in (tmp_path / "rep/cache").glob("*.safetensors"))
    assert names == ["all_joint", "main_pgd20", "merged_pgd20", "second_pgd20"]
    assert set(rep["adaptive"]["joint"]) == {"main", "second", "merged"}
    for mode, c in rep["adaptive"]["joint"].items():
        own = rep["results"][mode]["attacks"]
        assert c["against"] == "pgd20" and c["difference"] == pytest.approx(
            own["joint"]["graph"] - own["pgd20"]["graph"]
        )
    lower = [m for m, c in rep["adaptive"]["joint"].items() if c["difference"] < 0]
    assert sorted(m for m in lower) == sorted(w.split(":")[0] for w in rep["warnings"] if "under joint" in w)
    assert rep["shifted_traffic"] == [] and "Shifted traffic" not in (tmp_path / "rep/report.md").read_text()


def test_the_report_judges_the_monitor_per_attacker_and_on_shifted_traffic(report):
    table = report["head_disagreement"]
    assert set(table["attacks"]["agree"]) == {"all"} and set(table["attacks"]["joint"]) == {"all"}
    assert set(table["attacks"]["pgd20"]) == {"main", "second", "merged"}
    for by_target in table["attacks"].values():
        for r in by_target.values():
            ev = r["evasion"]
            assert 0 <= ev["all_agree"]["rate"] <= ev["heads_agree"]["rate"] <= 1 and ev["heads_agree"]["n"] == 6
    # agree starts from PGD-20 on merged (same seed) and only keeps what evades better: never fewer evasions
    agree, pgd = table["attacks"]["agree"]["all"]["evasion"], table["attacks"]["pgd20"]["merged"]["evasion"]
    assert agree["heads_agree"]["rate"] >= pgd["heads_agree"]["rate"]
    rows = report["shifted_traffic"]
    assert [(r["corruption"], r["severity"]) for r in rows][:2] == [("clean", 0), ("gaussian-noise", 1)] and len(
        rows
    ) == 10
    assert rows[0]["disagreement"]["rate"] == table["clean"]["rate"]
    assert rows[0]["accuracy"]["merged"]["graph"] == report["results"]["merged"]["attacks"]["clean"]["graph"]


def test_system_attacks_need_the_dual_head_and_modes_must_be_in_the_artifact():
    from training.robustness.settings import for_artifact

    with pytest.raises(EvaluationError, match="attack the dual head's three outputs together"):
        for_artifact(EvalSettings(attacks=("clean", "agree")), ("main",))
    with pytest.raises(EvaluationError, match="this artifact has only main"):
        for_artifact(EvalSettings(modes=("merged",)), ("main",))
    resolved = for_artifact(EvalSettings(), ("main",))
    assert resolved.modes == ("main",) and not resolved.transfer
    with pytest.raises(ValueError, match="--agree-targets must be >= 1"):
        EvalSettings(agree_targets=0)


def test_the_primary_endpoint_rule_and_flag():
    from training.robustness.scoring import default_primary, mode_only_reference

    assert default_primary(("clean", "pgd20", "autoattack")) == "merged-main@worst-case"  # a suite: its worst case
    assert default_primary(("clean", "autoattack")) == "merged-main@autoattack"
    assert default_primary(("clean", "margin20", "margin100x3", "pgd100")) == "merged-main@margin100x3"
    assert default_primary(("clean", "pgd20", "pgd10x5", "square")) == "merged-main@pgd10x5"
    assert default_primary(("clean", "square")) == "merged-main@square"
    assert default_primary(("clean",)) is None and default_primary(("clean", "joint", "agree")) is None
    accuracies = {"apgd-ce": {"graph": 0.5}, "pgd10": {"graph": 0.2}, "square": {"graph": 0.1}}
    assert mode_only_reference("agree", accuracies) == "apgd-ce"  # a fixed order, not the lowest accuracy
    assert mode_only_reference("agree10", accuracies) == "pgd10"
    assert mode_only_reference("system100x3", {**accuracies, "margin100": {"graph": 0.3}}) == "margin100"  # same K
    with pytest.raises(ValueError, match="--primary 'merged-main@autoattack': use COMPARISON@ATTACK"):
        EvalSettings(attacks=("clean", "pgd20"), primary="merged-main@autoattack")
    assert EvalSettings(attacks=("clean", "pgd20"), primary="merged-second@pgd20").primary == "merged-second@pgd20"
    assert EvalSettings(attacks=("clean", "pgd20"), primary="none").primary == "none"
