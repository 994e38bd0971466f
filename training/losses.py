"""The four training objectives as pure functions of logits (no optimiser, no mode flips).

- natural: CE(f(x), y)
- SAT (Madry et al.): CE(f(x_adv), y)
- TRADES (Zhang et al.): CE(f(x), y) + beta * KL(p(x) || p(x_adv)), beta = 1/lambda
- MART (Wang et al.): BCE(f(x_adv), y) + beta * mean_i KL_i(p(x) || p(x_adv)) * (1 - p(x)_y)

``training.methods`` says which one a method minimises and how its adversarial examples are made.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
