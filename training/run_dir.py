"""The run directory: where ``dhat train`` writes and where export and evaluation read.

One home for the layout, so a file name is spelled once::

    RUN/
      recipe.yaml            the resolved recipe (overrides applied); a run always describes what made it
      metrics.jsonl          one JSON row per epoch and stage
      training_curves.png    clean / robust validation accuracy per epoch
      stage1/ stage2/ stage3/
        best/                the epoch the stage's selection rule picked (validation PGD accuracy)
        epoch-E/             epochs listed in the stage's keep_epochs (for `dhat compare`)
        last/                the last complete epoch, with optimizer.safetensors for --resume
          config.json        {"format", "model", "trained", "meta"}: rebuilds the network by name
          model.safetensors  the weights
          optimizer.safetensors  SGD momentum (``last`` only)

The final checkpoint, the one a run hands to export, is ``stage3/best``. A checkpoint's own files are
``training.checkpoints``' format (below this module); this module says where checkpoints live.

It also owns ``metrics.jsonl``: ``append_metrics`` and ``trim_metrics`` are the only writers.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.checkpoints import is_checkpoint, read_meta, rewrite_meta
from training.data import load_splits
from training.datasets.splits import DataSplits, validation_from_test
from training.recipes import Recipe, load_saved_recipe, with_flags

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "training_curves.png"
BEST, LAST = "best", "last"
FINAL_STAGE = 3


def recipe_splits(recipe: Recipe) -> DataSplits:
    """The train / validation / test splits a recipe trains and is evaluated on (fixed split seed).

    ``validation.source: test`` validates on ``data.val_size`` test images (nothing held out of training)
    and leaves the test split without them."""
    if recipe.validation.source == "test":
        return validation_from_test(load_splits(dataclasses.replace(recipe.data, val_size=0)), recipe.data.val_size)
    return load_splits(recipe.data)


@dataclass(frozen=True)
class RunDir:
    """A run directory by path; every file of the layout above is a property or method here."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def recipe_file(self) -> Path:
        """``RUN/recipe.yaml``."""
        return self.path / RECIPE_FILE

    @property
    def metrics_file(self) -> Path:
        """``RUN/metrics.jsonl``."""
        return self.path / METRICS_FILE

    @property
    def curves_file(self) -> Path:
        """``RUN/training_curves.png``."""
        return self.path / CURVES_FILE

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Add one epoch's row to ``metrics.jsonl``."""
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(row) + "\n")

    def trim_metrics(self, stage: int, done: int) -> None:
        """Drop the rows of ``stage`` after its ``done``-th epoch (1-based; they will be re-run after a resume)."""
        rows = self.metrics()
        keep = [r for r in rows if not (r["stage"] == stage and r["epoch"] > done)]
        if len(keep) != len(rows):
            self.write_metrics(keep)

    def metrics(self) -> list[dict[str, Any]]:
        """Every row of ``metrics.jsonl`` (none before the first epoch)."""
        if not self.metrics_file.is_file():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Replace ``metrics.jsonl`` with ``rows`` (trimming on resume, renumbering, a reused stage 1)."""
        self.metrics_file.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def upgrade_epoch_numbers(self) -> bool:
        """A run written when epochs counted from 0: renumber its metrics rows and checkpoint metas from 1
        (once; later runs are 1-based already). Returns whether anything changed."""
        metas = {
            c: read_meta(c)
            for n in (1, 2, 3)
            for c in (self.checkpoint(n, BEST), self.checkpoint(n, LAST))
            if is_checkpoint(c)
        }
        old = [c for c, m in metas.items() if m.epoch is not None and m.epoch_base == 0]
        if not old:
            return False
        self.write_metrics([{**r, "epoch": r["epoch"] + 1} for r in self.metrics()])
        for ckpt in old:
            rewrite_meta(ckpt, lambda m: dataclasses.replace(m, epoch=m.epochs_done, epoch_base=1))
        return True

    def is_run(self) -> bool:
        """Whether this directory holds a run (a saved recipe), as opposed to a bare checkpoint."""
        return self.recipe_file.is_file()

    def kept(self, n: int, epoch: int) -> Path:
        """``RUN/stageN/epoch-E``: a checkpoint ``stageN.keep_epochs`` asked to keep (E 1-based)."""
        return self.stage(n) / f"epoch-{epoch}"

    def stage(self, n: int) -> Path:
        """``RUN/stageN``."""
        return self.path / f"stage{n}"

    def checkpoint(self, n: int, which: str) -> Path:
        """``RUN/stageN/best`` or ``RUN/stageN/last``."""
        if which not in (BEST, LAST):
            raise ValueError(f"checkpoint must be {BEST!r} or {LAST!r}, got {which!r}")
        return self.stage(n) / which

    def final_checkpoint(self) -> Path:
        """The checkpoint a run hands to export and evaluation: the best stage-3 checkpoint."""
        return self.checkpoint(FINAL_STAGE, BEST)

    def stage_complete(self, n: int) -> bool:
        """Whether stage ``n`` ran to the end of its schedule (its ``last`` says ``complete``)."""
        last = self.checkpoint(n, LAST)
        return is_checkpoint(last) and read_meta(last).complete

    def load_recipe(self, data_dir: str | None = None) -> Recipe:
        """The recipe this run was trained with; ``data_dir`` replaces the data folder if it moved."""
        if not self.is_run():
            raise FileNotFoundError(f"{self.path}: no {RECIPE_FILE}; is this a run directory made by `dhat train`?")
        return with_flags(load_saved_recipe(self.recipe_file), data_dir=data_dir)

    def load_data(self, data_dir: str | None = None) -> tuple[Recipe, DataSplits]:
        """This run's recipe and its data splits (the same validation and test images as in training)."""
        recipe = self.load_recipe(data_dir)
        return recipe, recipe_splits(recipe)
