"""The three DH-AT stages (§III-C): what each trains, freezes and hands on (the loop is ``training.stages``).

======  ===============  =====================================  ==========================
stage   forward mode     trains                                 frozen (no grad, BN fixed)
======  ===============  =====================================  ==========================
1       ``main``         trunk + main head (or ``init`` loads)  second head, merger
2       ``second``       second head (fresh or copy of main)    trunk, main head, merger
3       ``merged``       merger (TRADES, 1/lambda = 2)          trunk, both heads
======  ===============  =====================================  ==========================
"""

from __future__ import annotations

from dataclasses import dataclass

from dhat_serve.contract import MAIN, MERGED, SECOND, Mode

__all__ = ["STAGES", "Stage", "StageError", "stage_of"]


@dataclass(frozen=True)
class Stage:
    """One row of the stage table above: what a stage runs, trains and hands on.

    ``mode`` is the forward the stage trains and validates; ``trains`` the parts left unfrozen;
    ``produces`` the part marked trained when it ends. What picks ``best`` is the recipe's
    ``stageN.select`` (robust, clean or last), because it depends on the method, not on the stage.
    """

    number: int
    mode: Mode
    trains: tuple[str, ...]
    produces: str


STAGES: tuple[Stage, ...] = (
    Stage(1, MAIN, ("trunk", "main_head"), "main_head"),
    Stage(2, SECOND, ("second_head",), "second_head"),
    Stage(3, MERGED, ("merger",), "merger"),
)


def stage_of(n: int) -> Stage:
    """The stage numbered ``n`` (1, 2 or 3), or a StageError naming the valid numbers."""
    for stage in STAGES:
        if stage.number == n:
            return stage
    raise StageError(f"--stage must be 1, 2 or 3, got {n}")


class StageError(RuntimeError):
    """A stage that cannot start; raised before any training, with what to run instead."""
