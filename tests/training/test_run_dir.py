"""The run directory: one home for the layout that training writes and export / evaluation read."""

from __future__ import annotations

import json

import pytest
import torch

from training.checkpoints import is_checkpoint
from training.pipeline import train_recipe
from training.recipes import load_recipe
from training.run_dir import RunDir


def test_layout_paths(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.recipe_file == tmp_path / "r/recipe.yaml"
    assert run.metrics_file == tmp_path / "r/metrics.jsonl"
    assert run.checkpoint(2, "last") == tmp_path / "r/stage2/last"
    assert run.final_checkpoint() == tmp_path / "r/stage3/best"
    with pytest.raises(ValueError, match="'best' or 'last'"):
        run.checkpoint(1, "first")


def test_a_folder_without_a_recipe_is_not_a_run_and_says_so(tmp_path):
    run = RunDir(tmp_path)
    assert not run.is_run() and not run.stage_complete(1)
    with pytest.raises(FileNotFoundError, match="no recipe.yaml; is this a run directory"):
        run.load_recipe()


def test_a_trained_run_describes_itself(tmp_path, tiny_overrides):
    recipe = load_recipe("digits", tiny_overrides)
    path = train_recipe(recipe, tmp_path / "run", stages=(1,), device="cpu")
    run = RunDir(path)
    assert run.is_run() and run.stage_complete(1) and not run.stage_complete(2)
    assert is_checkpoint(run.checkpoint(1, "best")) and is_checkpoint(run.checkpoint(1, "last"))
    assert (run.checkpoint(1, "last") / "optimizer.safetensors").is_file()  # momentum for --resume
    assert not (run.checkpoint(1, "best") / "optimizer.safetensors").exists()
    loaded, splits = run.load_data()
    assert loaded == recipe
    assert len(splits.test) == 270 and splits.image_size == 8
    meta = json.loads((run.checkpoint(1, "best") / "config.json").read_text())["meta"]
    assert meta["validation_eps"] == pytest.approx(recipe.validation.attack.eps)


def test_validation_from_test_images_leaves_them_out_of_the_test_split():
    """validation.source: test (the paper's "1000 CIFAR-10 test images"): no image both picks and scores."""
    from training.recipes import load_recipe
    from training.run_dir import recipe_splits

    ours = recipe_splits(load_recipe("digits", ["data.val_size=50"]))
    paper = recipe_splits(load_recipe("digits", ["data.val_size=50", "validation.source=test"]))
    x_test, _ = ours.test.tensors
    val = torch.stack([paper.val[i][0] for i in range(len(paper.val))])
    rest = torch.stack([paper.test[i][0] for i in range(len(paper.test))])
    assert len(val) == 50 and len(rest) == len(x_test) - 50
    assert len(paper.train) == len(ours.train)  # digits' own split; CIFAR / IDX sources hold nothing out then
    rows = sorted(r.numpy().tobytes() for r in torch.cat([val, rest]).flatten(1))
    assert rows == sorted(r.numpy().tobytes() for r in x_test.flatten(1))  # the same images, split in two
    with pytest.raises(ValueError, match="validation.source=test takes data.val_size=500 of the 270 test images"):
        recipe_splits(load_recipe("digits", ["data.val_size=500", "validation.source=test"]))


def test_a_run_from_when_epochs_counted_from_zero_is_renumbered_once(tmp_path, tiny_overrides):
    import dataclasses

    from training.checkpoints import read_meta, rewrite_meta

    run = RunDir(
        train_recipe(
            load_recipe("digits", [*tiny_overrides, "stage1.epochs=2"]), tmp_path / "run", stages=(1,), device="cpu"
        )
    )
    assert [r["epoch"] for r in run.metrics()] == [1, 2] and read_meta(run.checkpoint(1, "last")).epoch == 2
    run.write_metrics([{**r, "epoch": r["epoch"] - 1} for r in run.metrics()])  # as an older version wrote it
    for which in ("best", "last"):
        rewrite_meta(run.checkpoint(1, which), lambda m: dataclasses.replace(m, epoch=m.epoch - 1, epoch_base=0))
    assert read_meta(run.checkpoint(1, "last")).epochs_done == 2  # read right before the upgrade too
    assert run.upgrade_epoch_numbers() and not run.upgrade_epoch_numbers()  # once
    assert [r["epoch"] for r in run.metrics()] == [1, 2]
    last = read_meta(run.checkpoint(1, "last"))
    assert (last.epoch, last.epoch_base, last.epochs_done) == (2, 1, 2)
