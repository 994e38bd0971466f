"""``dhat train``: run a recipe's stages in order into a self-describing run directory.

``RUN/recipe.yaml`` is the resolved recipe (overrides applied, seed recorded); resuming checks that
the recipe has not changed, so a run directory always describes what produced it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import yaml

from training.distributed import setup, teardown
from training.plots import plot_training_curves
from training.recipes import Recipe, load_saved_recipe, recipe_to_dict
from training.run_dir import RunDir, recipe_splits
from training.stages import StageError, require_previous, run_stage, stage_of

log = logging.getLogger(__name__)


def check_run_dir(recipe: Recipe, run_dir: Path, stages: Sequence[int], resume: bool) -> None:
    """Everything that can be refused before data is loaded or a step is taken."""
    saved = RunDir(run_dir).recipe_file
    if saved.is_file():
        if recipe_to_dict(load_saved_recipe(saved)) != recipe_to_dict(recipe):
            raise StageError(
                f"{saved} holds a different recipe than the one asked for; use a new --out "
                "(or the same recipe and overrides as before)"
            )
    first = min(stages)
    if first > 1 and not (resume and RunDir(run_dir).stage_complete(first)):
        require_previous(run_dir, first, recipe.stage(first))


def train_recipe(
    recipe: Recipe,
    run_dir: str | Path,
    stages: Sequence[int] = (1, 2, 3),
    resume: bool = False,
    device: str | None = None,
) -> Path:
    """Run ``stages`` of ``recipe`` into ``run_dir``; complete stages are skipped when resuming."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    for n in stages:
        stage_of(n)  # refuses a stage number that does not exist
    check_run_dir(recipe, run_dir, stages, resume)
    ctx = setup(device)
    try:
        if ctx.is_main:
            if run.upgrade_epoch_numbers():  # a run from before epochs counted from 1 in its files
                log.info("%s: renumbered its epochs from 1 (metrics.jsonl and checkpoint metas)", run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            run.recipe_file.write_text(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
        splits = recipe_splits(recipe)
        for n in sorted(stages):
            if resume and run.stage_complete(n):
                log.info("stage %d already complete in %s; skipping", n, run_dir)
                continue
            run_stage(recipe, n, run_dir, splits, ctx, resume)
            if ctx.is_main and run.metrics_file.is_file():
                plot_training_curves(run.metrics_file, run.curves_file)
    finally:
        teardown(ctx)
    return run_dir
