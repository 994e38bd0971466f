"""The four training objectives as pure functions of logits (no optimiser, no mode flips).

- natural: CE(f(x), y)
- SAT (Madry et al.): CE(f(x_adv), y)
- TRADES (Zhang et al.): CE(f(x), y) + beta * KL(p(x) || p(x_adv)), beta = 1/lambda
- MART (Wang et al.): BCE(f(x_adv), y) + beta * mean_i KL_i(p(x) || p(x_adv)) * (1 - p(x)_y)

``method_loss`` crafts the method's own adversarial examples (in eval mode, via ``training.attacks``)
and then evaluates the objective with the model in whatever mode the caller set (train mode).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from training.attacks import PGDConfig, pgd

METHODS = ("natural", "sat", "trades", "mart")


def natural_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, C) clean logits, (N,) labels -> mean cross-entropy (stage 1 of a natural main head)."""
    return F.cross_entropy(logits, y)


def sat_loss(logits_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, C) logits on PGD examples, (N,) labels -> mean cross-entropy (Madry et al.'s PGD-AT)."""
    return F.cross_entropy(logits_adv, y)


def trades_loss(logits_nat: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """(N, C), (N, C), (N,) -> scalar. KL is summed over classes and averaged over the batch."""
    robust = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_nat, 1), reduction="batchmean")
    return F.cross_entropy(logits_nat, y) + beta * robust


def mart_loss(logits_nat: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """MART as its authors' code defines it (boosted CE on x_adv + misclassification-weighted KL)."""
    adv_probs = F.softmax(logits_adv, 1)
    top2 = torch.argsort(adv_probs, dim=1)[:, -2:]
    wrong = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    boosted = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), wrong)
    nat_probs = F.softmax(logits_nat, 1)
    true_probs = nat_probs.gather(1, y.unsqueeze(1)).squeeze(1)
    kl = (nat_probs * (torch.log(nat_probs + 1e-12) - torch.log(adv_probs + 1e-12))).sum(1)
    return boosted + beta * (kl * (1.0000001 - true_probs)).mean()


def training_attack(method: str, attack: PGDConfig) -> PGDConfig:
    """The recipe's attack (eps, step, steps) with the method's own start and loss, as its authors' code has it.

    SAT: uniform start + CE (Madry et al.); TRADES: x + 0.001 N(0, 1) start + KL; MART: the same start + CE.
    """
    if method == "trades":
        return dataclasses.replace(attack, random_start="normal", loss="kl")
    if method == "mart":
        return dataclasses.replace(attack, random_start="normal", loss="ce")
    return dataclasses.replace(attack, random_start="uniform", loss="ce")


def method_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, beta: float,
                attack: PGDConfig | None, attack_model: nn.Module | None = None) -> torch.Tensor:
    """The training loss of ``method`` on a batch; ``model`` maps (N, C, H, W) -> (N, classes).

    ``attack_model`` (default ``model``) crafts the adversarial examples: under DDP it is the bare
    network, because a DDP forward that is never followed by a backward breaks the next step.
    """
    if method == "natural":
        return natural_loss(model(x).float(), y)
    if attack is None:
        raise ValueError(f"method {method!r} needs an attack config")
    x_adv = pgd(attack_model or model, x, y, attack)
    if method == "sat":
        return sat_loss(model(x_adv).float(), y)
    logits_nat, logits_adv = model(x).float(), model(x_adv).float()
    if method == "trades":
        return trades_loss(logits_nat, logits_adv, y, beta)
    if method == "mart":
        return mart_loss(logits_nat, logits_adv, y, beta)
    raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
