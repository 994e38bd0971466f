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
    result = CliRunner().invoke(app, ["train", "digits", "--data-dir", folder, "--init", str(init), "--copy-main",
                                      "--out", str(tmp_path / "run")])
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
