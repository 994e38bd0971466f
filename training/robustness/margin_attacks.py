"""The margin attacks of the ``strong`` suite (issue 35): APGD on logit-margin hinges, best iterate, restarts.

Three families, each ``NAME[K][xR]`` (K APGD steps, default 100; R runs, default 1):

- ``marginK[xR]``: untargeted on one mode alone, the C&W margin ``max_{j != y} z_j - z_y`` (the "untargeted
  margin / DLR attack on each mode" a reviewer asks for beside AutoAttack's cross-entropy and targeted DLR).
- ``systemK[xR]``: untargeted on the three outputs together (merged, main, second), the sum of their margins each
  clamped at ``KAPPA`` (a little above 0), so an output already fooled stops pulling (``joint``'s summed cross-entropy
  did not: the output
  furthest from the label dominated). Success level per iterate: 3 for a fooled ``merged``, 1 per fooled head.
- ``evadeK[xR]``: the head-agreement monitor evaded, on the same losses (``training.robustness.evasion``).

An output counts as fooled only with a margin above ``TAU`` (the twin crafts, the graph scores: an example only just
across the boundary could flip back). Tensors: images (N, C, H, W) in [0, 1], labels (N,); a system attack
differentiates ``AllOutputs``.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from training.attacks import eval_mode
from training.models.dual_head import AllOutputs
from training.robustness.apgd import APGDConfig, apgd
from training.robustness.margins import KAPPA, TAU, hinge, margin

MARGIN_NAME = re.compile(r"^(margin|system|evade)(\d+)?(?:x(\d+))?$")
DEFAULT_STEPS = 100  # AutoAttack's APGD runs 100 iterations (Croce & Hein 2020, §4); the project's default here
MERGED_WEIGHT = 3  # systemK's success level: a fooled merged outranks both heads fooled (3 > 1 + 1)


def is_margin_attack(name: str) -> bool:
    """Whether ``name`` is one of this module's attacks (``marginK``, ``systemK``, ``evadeK`` with ``xR``)."""
    return MARGIN_NAME.match(name) is not None


def is_margin_system(name: str) -> bool:
    """``systemK`` / ``evadeK``: crafted once on the three outputs, scored on every mode."""
    m = MARGIN_NAME.match(name)
    return m is not None and m.group(1) != "margin"


def margin_config(name: str, eps: float) -> APGDConfig:
    """``NAME[K][xR]`` -> APGD with K steps (default 100) and R runs (default 1) at ``eps``."""
    m = MARGIN_NAME.match(name)
    if m is None:
        raise ValueError(f"{name!r} is not a margin attack (marginK[xR], systemK[xR], evadeK[xR])")
    return APGDConfig(eps=eps, steps=int(m.group(2) or DEFAULT_STEPS), restarts=int(m.group(3) or 1))


def margin_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: APGDConfig) -> torch.Tensor:
    """Untargeted APGD on one output's margin: (N, C, H, W) -> adversarial, same shape."""

    def fn(xa: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = margin(model(xa), y[idx])
        return m, (m > TAU).long()

    with eval_mode(model):
        return apgd(fn, x, cfg, max_rank=1)


def system_rank(outputs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor:
    """(N,) ``3 * [merged wrong] + [main wrong] + [second wrong]`` of (merged, main, second) logits, wrong meaning a
    margin above ``TAU``."""
    wrong = [(margin(o, y) > TAU).long() for o in outputs]
    return MERGED_WEIGHT * wrong[0] + wrong[1] + wrong[2]


def system_attack(system: AllOutputs, x: torch.Tensor, y: torch.Tensor, cfg: APGDConfig) -> torch.Tensor:
    """Untargeted APGD on the three outputs' margins, each clamped at 0 (module docstring)."""

    def fn(xa: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = system(xa)
        objective = sum(hinge(margin(o, y[idx]), KAPPA) for o in outputs)
        return objective, system_rank(outputs, y[idx])  # type: ignore[return-value]

    with eval_mode(system):
        return apgd(fn, x, cfg, max_rank=MERGED_WEIGHT + 2)
