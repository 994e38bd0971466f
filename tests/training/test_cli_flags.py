"""CLI flags reach the recipe as typed values, never re-parsed as YAML text."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dhat_serve.cli import app


@pytest.mark.parametrize("folder", ["/data/my #1", "yes", "2024-01-02", "null", "8/255"])
def test_data_dir_and_init_reach_the_recipe_unchanged(folder, tmp_path, monkeypatch):
    import training.pipeline

    seen = {}
    monkeypatch.setattr(training.pipeline, "train_recipe", lambda recipe, run_dir, **kw: seen.update(recipe=recipe))
    init = tmp_path / f"{folder.replace('/', '_')}.safetensors"
    init.write_bytes(b"")
    result = CliRunner().invoke(
        app,
        ["train", "digits", "--data-dir", folder, "--init", str(init), "--copy-main", "--out", str(tmp_path / "run")],
    )
    assert result.exit_code == 0, result.output
    recipe = seen["recipe"]
    assert recipe.data.data_dir == folder and isinstance(recipe.data.data_dir, str)
    assert recipe.stage1.init == str(init) and recipe.stage2.copy_main is True


@pytest.mark.parametrize("extra, epochs", [([], 0), (["--finetune-init"], 15), (["stage1.epochs=3"], 3)])
def test_init_is_used_as_is_unless_asked_to_train_from_it(extra, epochs, tmp_path):
    """§III-C: a pre-trained main head "can be directly loaded ... without any modifications"."""
    import json

    init = tmp_path / "head.safetensors"
    init.write_bytes(b"")
    result = CliRunner().invoke(app, ["train", "digits", "--init", str(init), "--plan", "--json", *extra])
    assert result.exit_code == 0, result.output
    stage1 = json.loads(result.output)["stages"][0]
    assert stage1["epochs"] == epochs and stage1["init"] == str(init)


def test_stage1_from_reuses_a_matching_stage_one_and_refuses_another(tmp_path, tiny_overrides):
    """Table I rows 2 / 6 share one main head: train it once, start the second recipe from it."""
    from safetensors.torch import load_file

    first = tmp_path / "first"
    assert (
        CliRunner()
        .invoke(app, ["train", "digits", *tiny_overrides, "--out", str(first), "--stage", "1", "--device", "cpu"])
        .exit_code
        == 0
    )
    second = tmp_path / "second"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "digits",
            *tiny_overrides,
            "stage2.beta=2",
            "--out",
            str(second),
            "--stage1-from",
            str(first),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    a, b = (
        load_file(str(first / "stage1/best/model.safetensors")),
        load_file(str(second / "stage1/best/model.safetensors")),
    )
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert (second / "stage3/best/config.json").is_file()
    refused = CliRunner().invoke(
        app,
        [
            "train",
            "digits",
            *tiny_overrides,
            "stage1.beta=3",
            "--out",
            str(tmp_path / "third"),
            "--stage1-from",
            str(first),
        ],
    )
    assert refused.exit_code == 2 and "stage1.beta: 6.0 there, 3.0 here" in refused.output
    assert not (tmp_path / "third").exists()


@pytest.mark.parametrize("flag, expected", [([], "fp32"), (["--attack-precision", "tf32"], "tf32")])
def test_eval_attack_precision_reaches_the_settings(flag, expected, tmp_path, monkeypatch):
    import training.robustness.evaluate

    seen = {}
    monkeypatch.setattr(
        training.robustness.evaluate, "evaluate", lambda art, run, settings, out: seen.update(s=settings)
    )
    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--run", str(tmp_path), *flag])
    assert result.exit_code == 0, result.output
    assert seen["s"].attack_precision == expected


def test_eval_refuses_an_unknown_attack_precision_naming_the_flag(tmp_path):
    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--run", str(tmp_path), "--attack-precision", "bf16"])
    assert result.exit_code == 2 and "--attack-precision 'bf16': use fp32 or tf32" in result.output, result.output
