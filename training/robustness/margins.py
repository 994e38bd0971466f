"""Logit-margin losses (Carlini & Wagner 2017's f6), per image, for the attacks of the ``strong`` suite.

Why margins, not cross-entropy: a summed cross-entropy over several outputs is unbounded, so the output already
furthest from its label dominates the gradient and keeps pulling after it is fooled (issue 35: ``joint`` came out
weaker than PGD-20 on ``merged`` alone). A margin clamped at ``kappa`` (a hinge) is flat once it is satisfied: a
fooled output stops pulling and the gradient goes to the outputs still right.

Shapes: logits (N, classes), labels or targets (N,) int64; every function returns (N,) float.
"""

from __future__ import annotations

import torch


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) ``max_{j != y} z_j - z_y``: > 0 exactly where the output is wrong (its argmax is not ``y``)."""
    logits = logits.float()
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
    return others - true


def targeted_margin(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(N,) ``z_t - max_{j != t} z_j``: > 0 exactly where the output predicts the target ``t``."""
    return -margin(logits, t)


def hinge(value: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """``min(value, kappa)``: the attack's objective rises with ``value`` until ``value`` reaches ``kappa``, then is
    flat (zero gradient), so a satisfied term stops pulling."""
    return value.clamp(max=kappa)


TAU = 1e-2
"""An output counts as fooled (or agreeing) only when its margin exceeds TAU: the examples are crafted on the twin and
scored on the graph, which differ by ~1e-5 in fp32 (~1e-3 when crafting in TF32), so an example only just across the
boundary could flip back (the project's choice, 10x the TF32 difference)."""
KAPPA = 5e-2
"""Where a hinge stops pulling in the system and evasion attacks: a little past TAU, so a satisfied term is safely
satisfied before its gradient is switched off (the project's choice)."""


def top_gap(logits: torch.Tensor) -> torch.Tensor:
    """(N,) top-1 minus top-2 logit: how firmly the output holds its prediction."""
    top = logits.float().topk(2, dim=1).values
    return top[:, 0] - top[:, 1]
