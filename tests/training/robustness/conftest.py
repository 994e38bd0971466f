from __future__ import annotations

import pytest

from export.artifact import export_artifact
from tests.training.conftest import TINY
from training.pipeline import train_recipe
from training.recipes import load_recipe


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(run dir, artifact dir) of a tiny digits dual head (natural main head, 3 epochs), shared by the eval tests."""
    root = tmp_path_factory.mktemp("evalrun")
    recipe = load_recipe("digits", TINY + ["stage1.epochs=3", "stage1.method=natural"])
    run = train_recipe(recipe, root / "run", device="cpu")
    export_artifact(run, root / "artifact", parity_n=16)
    return run, root / "artifact"
