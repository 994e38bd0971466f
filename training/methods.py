"""The training methods as one table: how each crafts its training attack, what it minimises, what picks ``best``.

Every place that used to branch on the method's name reads this table instead: recipes (valid names,
the default ``select``, refusing a recipe that sets what the method fixes), stages (the loss of a
batch), and ``dhat train --plan`` (the effective attack start and loss).

=========  ==========================  =============================================  ===========
method     training attack start/loss  loss (``training.losses``)                    best by
=========  ==========================  =============================================  ===========
natural    none                        CE(f(x), y)                                    clean
sat        uniform / CE                CE(f(x_adv), y) (Madry et al.)                 robust
trades     x + 0.001 N(0, 1) / KL      CE(f(x), y) + beta KL(p(x) || p(x_adv))        robust
mart       x + 0.001 N(0, 1) / CE      BCE(f(x_adv), y) + beta weighted KL            robust
=========  ==========================  =============================================  ===========

The starts and losses are the authors' reference code (see ``shared/NOTES.md``); ``natural`` selects by
clean accuracy because a naturally trained head is ~0 % robust at every epoch (Table II rows 1-3).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from training.attacks import PGDConfig, pgd
from training.losses import mart_loss, natural_loss, sat_loss, trades_loss

PairLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]
"""(clean logits (N, C), adversarial logits (N, C), labels (N,), beta) -> scalar loss."""


@dataclass(frozen=True)
class Method:
    """One training method: its attack's start and loss (None: no attack), its objective, its default ``select``."""

    name: str
    attack_start: str | None
    attack_loss: str | None
    objective: PairLoss
    select: str
    clean_forward: bool = True  # whether the objective reads f(x) (SAT reads only f(x_adv))

    @property
    def adversarial(self) -> bool:
        """Whether the method trains on adversarial examples (everything but ``natural``)."""
        return self.attack_start is not None

    def training_attack(self, attack: PGDConfig) -> PGDConfig:
        """The recipe's attack (eps, step, steps) with this method's start and loss."""
        if not self.adversarial:
            return attack
        return dataclasses.replace(attack, random_start=self.attack_start, loss=self.attack_loss)

    def overridden(self, attack: dict) -> list[str]:
        """The keys of a recipe's raw ``attack:`` mapping that this method fixes and the recipe set otherwise."""
        fixed = {"random_start": self.attack_start, "loss": self.attack_loss} if self.adversarial else {}
        return [k for k, v in fixed.items() if k in attack and attack[k] != v]

    def loss(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        beta: float,
        attack: PGDConfig,
        attack_model: nn.Module | None = None,
    ) -> torch.Tensor:
        """The training loss of a batch: ``model`` maps (N, C, H, W) -> (N, classes); ``attack`` is already
        ``training_attack``'s. ``attack_model`` (default ``model``) crafts the examples: under DDP it is the
        bare network, because a DDP forward that is never followed by a backward breaks the next step."""
        if not self.adversarial:
            return self.objective(model(x).float(), None, y, beta)  # type: ignore[arg-type]
        x_adv = pgd(attack_model or model, x, y, attack)
        # clean forward first, as the reference code does: in train mode the order moves BatchNorm's statistics
        logits_nat = model(x).float() if self.clean_forward else None
        return self.objective(logits_nat, model(x_adv).float(), y, beta)  # type: ignore[arg-type]


def _natural(logits_nat: torch.Tensor, _adv: None, y: torch.Tensor, _beta: float) -> torch.Tensor:
    return natural_loss(logits_nat, y)


def _sat(_nat: None, logits_adv: torch.Tensor, y: torch.Tensor, _beta: float) -> torch.Tensor:
    return sat_loss(logits_adv, y)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("natural", None, None, _natural, "clean"),
        Method("sat", "uniform", "ce", _sat, "robust", clean_forward=False),
        Method("trades", "normal", "kl", trades_loss, "robust"),
        Method("mart", "normal", "ce", mart_loss, "robust"),
    )
}


def method_of(name: str) -> Method:
    """The method called ``name``, or a ``ValueError`` listing the valid ones."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]
