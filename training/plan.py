"""``dhat train RECIPE --plan``: what a recipe will do, stage by stage, without data or training.

A reader checks a recipe against the paper here (§III-C, §IV-A, §V): each stage's method and beta
(1/lambda), its attack, its epochs and the learning rate of every epoch (milestones are 1-based epoch
numbers), the checkpoint it starts from and the rule that picks its ``best`` checkpoint.
"""

from __future__ import annotations

from typing import Any

from training.methods import method_of
from training.recipes import Recipe
from training.stage_table import STAGES


def recipe_plan(recipe: Recipe) -> dict[str, Any]:
    """``{"recipe": NAME, "stages": [{"stage", "method", "beta", "eps", "step", "steps", "epochs", "lr",
    "start_from", "select", ...}, ...]}``; ``lr`` holds epochs 1..E and ``start_from`` is None for stage 1."""
    stages = []
    for stage in STAGES:
        spec = recipe.stage(stage.number)
        stages.append(
            {
                "stage": stage.number,
                "mode": stage.mode,
                "trains": list(stage.trains),
                "method": spec.method,
                "beta": spec.beta,
                "eps": spec.attack.eps,
                "step": spec.attack.step,
                "steps": spec.attack.steps,
                "attack_start": spec.attack.random_start if method_of(spec.method).adversarial else None,
                "attack_loss": spec.attack.loss if method_of(spec.method).adversarial else None,
                "epochs": spec.epochs,
                "lr": stage_lrs(recipe, stage.number),
                "milestones": list(spec.milestones),
                "continue_schedule": spec.continue_schedule,
                "paper_best_epoch": spec.paper_best_epoch,
                "weight_decay": spec.weight_decay,
                "start_from": None if stage.number == 1 else spec.start_from,
                "init": spec.init if stage.number == 1 else None,
                "copy_main": spec.copy_main if stage.number == 2 else False,
                "select": spec.select,
            }
        )
    return {"recipe": recipe.name, "stages": stages}


def stage_lrs(recipe: Recipe, n: int) -> list[float]:
    """Stage ``n``'s lr per epoch; a ``continue_schedule`` stage is shown from the paper's best epoch (the run uses
    its own best epoch, read when the stage starts)."""
    spec = recipe.stage(n)
    start = spec.paper_best_epoch if spec.paper_best_epoch is not None else recipe.stage(n - 1).epochs if n > 1 else 0
    return [recipe.lr_at(n, e, start) for e in range(1, spec.epochs + 1)]


def lr_runs(lr: list[float]) -> str:
    """``[0.1] * 74 + [0.01] * 15`` as ``0.1 x74 (1-74), 0.01 x15 (75-89)``: a schedule readable at a glance."""
    parts, start = [], 0
    for i in range(1, len(lr) + 1):
        if i == len(lr) or lr[i] != lr[start]:
            parts.append(f"{lr[start]:.4g} x{i - start} ({start + 1}-{i})")
            start = i
    return ", ".join(parts) or "no epochs"
