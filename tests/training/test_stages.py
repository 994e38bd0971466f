import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.pipeline import train_recipe
from training.recipes import load_recipe
from training.stages import StageError

ROOT = Path(__file__).resolve().parents[2]


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "model.safetensors"))


def _part(state, prefix):
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_three_stages_change_only_what_they_train(tmp_path, tiny_overrides):
    run = train_recipe(load_recipe("digits", tiny_overrides), tmp_path / "run", device="cpu")
    s1, s2, s3 = (_weights(run / f"stage{n}" / "best") for n in (1, 2, 3))
    for prefix in ("trunk.", "main_head."):  # stage 2: trunk and main head bit-identical (BN stats too)
        assert _equal(_part(s1, prefix), _part(s2, prefix)), prefix
    assert not _equal(_part(s1, "second_head."), _part(s2, "second_head."))
    for prefix in ("trunk.", "main_head.", "second_head."):  # stage 3: everything but the merger
        assert _equal(_part(s2, prefix), _part(s3, prefix)), prefix
    assert not _equal(_part(s2, "merger."), _part(s3, "merger."))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["mode"]) for r in rows] == [(1, "main"), (2, "second"), (3, "merged")]
    assert {"epoch", "lr", "loss", "val_clean", "val_robust", "seconds"} <= rows[0].keys()
    assert (run / "training_curves.png").stat().st_size > 1000
    assert load_recipe(str(run / "recipe.yaml")).stage1.epochs == 1  # the run dir describes itself
    cfg = json.loads((run / "stage3/best/config.json").read_text())
    assert cfg["trained"] == {"main_head": True, "second_head": True, "merger": True}


def test_copy_main_starts_the_second_head_as_the_main_head(tmp_path, tiny_overrides):
    recipe = load_recipe("digits", tiny_overrides + ["stage2.copy_main=true", "stage2.epochs=0"])
    run = train_recipe(recipe, tmp_path / "run", stages=(1, 2), device="cpu")
    s2 = _weights(run / "stage2/best")
    main = {k.removeprefix("main_head."): v for k, v in s2.items() if k.startswith("main_head.")}
    second = {k.removeprefix("second_head."): v for k, v in s2.items() if k.startswith("second_head.")}
    assert _equal(main, second)


def test_stage_two_without_stage_one_is_refused_before_training(tmp_path, tiny_overrides):
    with pytest.raises(StageError, match="stage 2 needs the stage-1 checkpoint .*run `dhat train RECIPE --out"):
        train_recipe(load_recipe("digits", tiny_overrides), tmp_path / "run", stages=(2,), device="cpu")
    assert not (tmp_path / "run").exists()


def test_existing_run_needs_resume(tmp_path, tiny_overrides):
    recipe = load_recipe("digits", tiny_overrides)
    train_recipe(recipe, tmp_path / "run", stages=(1,), device="cpu")
    with pytest.raises(StageError, match="pass --resume"):
        train_recipe(recipe, tmp_path / "run", stages=(1,), device="cpu")
    with pytest.raises(StageError, match="different recipe"):
        train_recipe(load_recipe("digits", tiny_overrides + ["seed=5"]), tmp_path / "run", stages=(1,), device="cpu")


def _dhat(*args: str) -> list[str]:
    return [sys.executable, "-m", "dhat_serve.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _saved_epoch(config: Path) -> int:
    """The epoch of the checkpoint at ``config`` (0 while none is complete on disk or it is being written)."""
    try:
        return int(json.loads(config.read_text())["meta"]["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_kill_and_resume_ends_with_the_same_weights(tmp_path, tiny_overrides):
    args = [
        "train",
        "digits",
        "--stage",
        "1",
        "--device",
        "cpu",
        *tiny_overrides,
        "stage1.epochs=4",
        "data.batch_size=16",
    ]
    subprocess.run(_dhat(*args, "--out", str(tmp_path / "straight")), check=True, env=_env(), capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _dhat(*args, "--out", str(killed)), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    metrics, last = killed / "metrics.jsonl", killed / "stage1/last/config.json"
    deadline = time.time() + 120
    while time.time() < deadline and _saved_epoch(last) < 2:
        time.sleep(0.005)
    # No sleep to guess an epoch's length: the kill follows the saved epoch 2 within milliseconds, while an
    # epoch takes tens of them even on a fast CPU, so it always lands during epoch 3 or 4 of 4.
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads((killed / "stage1/last/config.json").read_text())["meta"]
    assert 2 <= done["epoch"] < 4 and not done["complete"], "the kill must land before the end of training"

    resumed = subprocess.run(_dhat(*args, "--out", str(killed), "--resume"), env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after epoch" in resumed.stderr
    assert _equal(_weights(tmp_path / "straight/stage1/last"), _weights(killed / "stage1/last"))
    epochs = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]  # 1-based, as --plan, the logs and the paper count


@pytest.mark.slow
def test_two_process_ddp_on_cpu_writes_a_checkpoint(tmp_path, tiny_overrides):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "dhat_serve.cli",
        "train",
        "digits",
        "--stage",
        "1",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "ddp"),
        *tiny_overrides,
    ]
    result = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    net_state = _weights(tmp_path / "ddp/stage1/last")
    assert any(k.startswith("trunk.") for k in net_state)
    rows = (tmp_path / "ddp/metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1  # only rank 0 writes


def test_the_stage_table_is_one_value_with_the_papers_three_stages():
    from training.stage_table import STAGES, stage_of

    assert [(s.number, s.mode, s.trains, s.produces) for s in STAGES] == [
        (1, "main", ("trunk", "main_head"), "main_head"),
        (2, "second", ("second_head",), "second_head"),
        (3, "merged", ("merger",), "merger"),
    ]
    with pytest.raises(StageError, match="--stage must be 1, 2 or 3, got 4"):
        stage_of(4)


def test_every_checkpoint_meta_has_the_same_keys_even_with_zero_epochs(tmp_path, tiny_overrides):
    # the epochs == 0 path used to write its own meta without validation_eps
    recipe = load_recipe("digits", tiny_overrides + ["stage2.epochs=0"])
    run = train_recipe(recipe, tmp_path / "run", stages=(1, 2), device="cpu")
    trained = json.loads((run / "stage1/best/config.json").read_text())["meta"]
    untouched = json.loads((run / "stage2/best/config.json").read_text())["meta"]
    assert untouched.keys() == trained.keys()
    assert untouched["validation_eps"] == trained["validation_eps"] == pytest.approx(recipe.validation.attack.eps)
    assert untouched["epoch"] == 0 and untouched["complete"] is True  # 0: no epoch trained
    flags = json.loads((run / "stage2/best/config.json").read_text())["trained"]
    assert flags["main_head"] is True and flags["second_head"] is False  # a 0-epoch stage trained nothing


def test_a_natural_stage_keeps_its_best_clean_epoch_not_a_pgd_noise_spike(tmp_path, tiny_overrides):
    recipe = load_recipe("digits-natural", tiny_overrides + ["stage1.epochs=4"])
    run = train_recipe(recipe, tmp_path / "run", stages=(1,), device="cpu")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    clean = [r["val_clean"] for r in rows]
    meta = json.loads((run / "stage1/best/config.json").read_text())["meta"]
    assert meta["select"] == "clean" and meta["epoch"] == clean.index(max(clean)) + 1
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert meta["best_score"] == max(clean)


@pytest.mark.parametrize("best, expected", [(2, [0.01, 0.001]), (3, [0.001, 0.001])])
def test_a_continued_stage_two_runs_stage_ones_schedule_from_the_runs_own_best_epoch(
    tmp_path, tiny_overrides, best, expected
):
    """Best-vs-last: stage 2 continues stage 1's lr schedule after the best epoch this run found, not the paper's."""
    overrides = [
        *tiny_overrides,
        f"stage1.epochs={best}",
        "stage1.milestones=[2, 4]",
        "stage1.select=last",
        "stage2.epochs=2",
        "stage2.continue_schedule=true",
        "stage2.paper_best_epoch=76",
    ]
    run = train_recipe(load_recipe("digits", overrides), tmp_path / "run", stages=(1, 2), device="cpu")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    stage2 = [r for r in rows if r["stage"] == 2]
    assert [r["lr"] for r in stage2] == pytest.approx(expected)  # lr 0.1, / 10 from epoch 2, / 100 from epoch 4
    assert [r["schedule_epoch"] for r in stage2] == [best + 1, best + 2]
