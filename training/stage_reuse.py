"""``dhat train RECIPE --stage1-from RUN``: start a run from another run's finished stage 1.

Table I's rows 2 and 6 (and 4 and 8) share one main head (TRADES 1/lambda 6, best = 76th epoch): the
paper trains it once. A reproduction may too, but only if that stage 1 is the one this recipe would
train: same seed, precision, network, data (its folder and loader workers aside), validation and stage-1
settings. Anything else is refused with the keys that differ, before a file is copied.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from training.recipes import Recipe, recipe_to_dict
from training.run_dir import RunDir
from training.stages import StageError

SHARED = ("seed", "precision", "model", "data", "validation", "stage1")
FREE = ("data.data_dir", "data.workers")  # where the files are and how they are read do not change stage 1


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(flat(v, f"{key}.") if isinstance(v, dict) else {key: v})
    return out


def stage1_differences(here: Recipe, there: Recipe) -> list[str]:
    """Each recipe key that shapes stage 1 and differs, as ``key: THERE there, HERE here``."""
    a, b = flat(recipe_to_dict(here)), flat(recipe_to_dict(there))
    keys = sorted(k for k in a.keys() | b.keys() if k.split(".")[0] in SHARED and k not in FREE)
    return [f"{k}: {b.get(k)!r} there, {a.get(k)!r} here" for k in keys if a.get(k) != b.get(k)]


def reuse_stage1(recipe: Recipe, run_dir: Path, source: Path) -> None:
    """Copy ``source``'s complete stage 1 (checkpoints and metrics rows) into the new run ``run_dir``."""
    src, dst = RunDir(source), RunDir(run_dir)
    if not src.is_run() or not src.stage_complete(1):
        raise StageError(
            f"--stage1-from {source}: not a run with a complete stage 1 (train it with "
            f"`dhat train RECIPE --out {source} --stage 1`)"
        )
    diffs = stage1_differences(recipe, src.load_recipe())
    if diffs:
        raise StageError(
            f"--stage1-from {source}: its stage 1 is not the one {recipe.name} trains: " + "; ".join(diffs)
        )
    if dst.stage(1).exists() or dst.is_run():
        raise StageError(f"--stage1-from: {run_dir} already holds a run; choose a new --out")
    shutil.copytree(src.stage(1), dst.stage(1))
    dst.write_metrics([r for r in src.metrics() if r["stage"] == 1])
