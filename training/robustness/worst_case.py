"""What the ``strong`` suite adds to a report (issue 35): each mode's per-image worst case over every attack that
ran, the convergence ladders of the strongest attack, and the large-eps sanity row.

- Worst case: an image counts as correct for a mode only if that mode's graph is right on it under every attack of
  the report, clean and the transfer attack from every other mode included (AutoAttack's rule, over the whole
  suite). It is never above any of its parts, by construction, and is the number a user should read.
- Convergence (Carlini et al. 2019, §5.1 "verify iterative attacks converged"): accuracy under the margin attack at
  20 / 100 / 500 steps and at 1 / 3 / 5 runs; a warning when the last rung still lowers it by more than
  ``TOLERANCE`` (and by more than one image): more steps or restarts might lower it further.
- Sanity: the margin attack at eps = 1 (any image reachable) must leave 0 %; anything above is a warning of a
  failing attack or masked gradients.

Per-image vectors are boolean (N,) numpy arrays of "the graph was right".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.robustness.adaptive import is_system_attack
from training.robustness.margin_attacks import is_margin_attack, margin_config
from training.robustness.settings import SANITY_ATTACK, SANITY_EPS, WORST_CASE
from training.robustness.stats import accuracy_with_ci

TOLERANCE = 0.005  # half a point: a last rung that still lowers accuracy by more is not converged (project's choice)


def worst_case(correct: dict[str, np.ndarray], transfer: np.ndarray | None) -> np.ndarray:
    """(N,) right under every attack of ``correct`` (clean included) and, when given, every transfer attack."""
    vectors = [v for name, v in correct.items() if name != WORST_CASE]
    out = np.logical_and.reduce(vectors) if vectors else np.zeros(0, dtype=bool)
    return out & transfer if transfer is not None else out


def worst_case_row(correct: dict[str, np.ndarray], transfer: np.ndarray | None) -> tuple[dict[str, Any], np.ndarray]:
    """The worst-case column of one mode (accuracy, Wilson interval, what it is over) and its per-image vector."""
    vec = worst_case(correct, transfer)
    acc = accuracy_with_ci(vec)
    over = [n for n in correct if n != WORST_CASE] + (["transfer"] if transfer is not None else [])
    return {"graph": acc["accuracy"], "graph_ci95": acc["ci95"], "n": acc["n"], "over": over}, vec


def ladders(attacks: list[str]) -> dict[str, list[str]]:
    """The budget ladders among the margin attacks that ran: ``steps`` (every ``marginK``, one run, by K) and
    ``restarts`` (``marginK`` and every ``marginKxR`` of the K that has restarts, by R); the preset's are
    ``suite.CONVERGENCE``."""
    single = [a for a in attacks if is_margin_attack(a) and not is_system_attack(a)]
    cfgs = {a: margin_config(a, 0.0) for a in single}
    steps = sorted((a for a in single if cfgs[a].restarts == 1), key=lambda a: cfgs[a].steps)
    multi = [a for a in single if cfgs[a].restarts > 1]
    k = max((cfgs[a].steps for a in multi), key=lambda s: sum(cfgs[a].steps == s for a in multi), default=None)
    restarts = sorted((a for a in single if cfgs[a].steps == k), key=lambda a: cfgs[a].restarts)
    return {name: rungs for name, rungs in (("steps", steps), ("restarts", restarts)) if len(rungs) > 1}


def convergence(results: dict[str, Any], n: int) -> tuple[dict[str, Any], list[str]]:
    """Per mode and ladder (``ladders``: steps, restarts), the accuracy at each rung, and a warning where the last
    rung still falls by more than ``TOLERANCE`` and more than one image."""
    table: dict[str, Any] = {}
    warnings: list[str] = []
    for mode, row in results.items():
        for ladder, rungs in ladders(list(row["attacks"])).items():
            ran = [(a, row["attacks"][a]) for a in rungs]
            table.setdefault(mode, {})[ladder] = [
                {"attack": a, "graph": r["graph"], "ci95": r["graph_ci95"]} for a, r in ran
            ]
            (prev_name, prev), (last_name, last) = ran[-2], ran[-1]
            drop = prev["graph"] - last["graph"]
            if drop > TOLERANCE and round(drop * n) > 1:
                warnings.append(
                    f"{mode}: not converged in {ladder}: {last_name} is {100 * drop:.2f} points below "
                    f"{prev_name} ({100 * last['graph']:.2f}% vs {100 * prev['graph']:.2f}%); more "
                    f"{ladder} may lower it further, so the worst case may overstate robustness"
                )
    return table, warnings


def sanity_rows(correct: dict[str, np.ndarray]) -> tuple[dict[str, Any], list[str]]:
    """The large-eps row per mode from its per-image vector, and a warning for any mode left above 0 %."""
    rows: dict[str, Any] = {}
    warnings: list[str] = []
    for mode, vec in correct.items():
        acc = accuracy_with_ci(vec)
        rows[mode] = {
            "attack": SANITY_ATTACK,
            "eps": SANITY_EPS,
            "graph": acc["accuracy"],
            "ci95": acc["ci95"],
            "n": acc["n"],
        }
        if acc["accuracy"] > 0:
            warnings.append(
                f"{mode}: {SANITY_ATTACK} at eps = {SANITY_EPS:g} leaves {100 * acc['accuracy']:.2f}% "
                f"({int(vec.sum())} of {vec.size} images) where any image is reachable: the attack is "
                "failing there (gradient masking?), so its numbers at the real eps are suspect"
            )
    return rows, warnings
