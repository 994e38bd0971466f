"""Attacks on the dual-head system as deployed, by an attacker who knows all three outputs and the monitor.

The service sells two things beyond one robust head: the ``merged`` output and ``mode=all``'s ``heads_agree``
flag (with ``dhat_heads_disagree_total``), a detector of attacks. Carlini et al. 2019 ("On Evaluating
Adversarial Robustness") and Tramèr et al. 2020 ("On Adaptive Attacks to Adversarial Example Defenses") ask
that a defence, a detector above all, be measured against an attack built for it. Two such attacks, both on the
project's one PGD loop (``training.attacks.ascend``; pyautoattack's APGD takes no custom loss):

- ``joint`` (``jointK``): untargeted, ascends the sum of the cross-entropies of merged, main and second, so one
  perturbation goes after every mode at once (is attacking ``merged`` through its small merger CNN alone the
  strongest white-box attack on it?). Its examples are scored on every mode.
- ``agree`` (``agreeK``): monitor evasion. It starts from the plain PGD-K example on merged; then for each image
  not yet evading, targeted in turn at its top-k wrong classes (ranked by merged's clean logits, as APGD-T
  ranks them; k = min(9, classes - 1) unless asked), it descends the summed targeted cross-entropy of the
  three outputs and keeps the first target whose example fools ``merged`` with the two heads agreeing (what
  ``heads_agree`` = true looks like to an operator).

K is the number of steps (default 20, the evaluation's PGD-20); the step is the paper's 2.5 * eps / K (§IV) from
a uniform random start, so ``joint`` is PGD-20 with another loss. Both are kept as they were (committed reports
name them) but are weak (issue 35: unbounded summed cross-entropy, last iterate, one start): their successors on
margin hinges with APGD, best iterate and restarts are ``systemK[xR]`` (``margin_attacks``) and ``evadeK[xR]``
(``evasion``, which also tries the heads kept on the true class while the merger flips). Tensors: images (N, C, H, W)
in [0, 1],
labels (N,), logits (N, classes).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from dhat_serve.contract import MERGED
from training.attacks import PGDConfig, ascend, eval_mode, pgd, pgd_schedule
from training.models.dual_head import AllOutputs, ModeView
from training.robustness.margin_attacks import is_margin_system, margin_config

SYSTEM_NAME = re.compile(r"^(joint|agree)(\d+)?$")
DEFAULT_STEPS = 20  # the evaluation's PGD-20 (Table I's attack), the project's choice for both attacks
MAX_TARGETS = 9  # APGD-T's n_target_classes for 10 classes (AutoAttack's standard version)


def is_system_attack(name: str) -> bool:
    """Whether ``name`` attacks the three outputs together (crafted once, on ``AllOutputs``, scored on every mode):
    ``joint``, ``agree`` here, and their margin-loss successors ``system``, ``evade`` (``margin_attacks``)."""
    return SYSTEM_NAME.match(name) is not None or is_margin_system(name)


def system_steps(name: str) -> int:
    """The steps K of a system attack's name (``joint`` 20, ``system`` 100 by default)."""
    m = SYSTEM_NAME.match(name)
    return int(m.group(2) or DEFAULT_STEPS) if m else margin_config(name, 0.0).steps


def system_config(name: str, eps: float) -> PGDConfig:
    """``joint[K]`` / ``agree[K]`` -> K steps of 2.5 * eps / K from a uniform start."""
    m = SYSTEM_NAME.match(name)
    if m is None:
        raise ValueError(f"{name!r} is not a system attack (joint, jointK, agree, agreeK)")
    return pgd_schedule(eps, steps=int(m.group(2) or DEFAULT_STEPS))


def summed_ce(outputs: tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
    """The sum over the three outputs of their cross-entropy against ``labels`` (N,), summed over the batch."""
    return sum(F.cross_entropy(o.float(), labels, reduction="sum") for o in outputs)  # type: ignore[return-value]


def joint_attack(system: AllOutputs, x: torch.Tensor, y: torch.Tensor, cfg: PGDConfig) -> torch.Tensor:
    """Untargeted PGD on merged + main + second cross-entropy: (N, C, H, W) -> adversarial, same shape."""
    with eval_mode(system):
        return ascend(lambda x_adv: summed_ce(system(x_adv), y), x.detach(), cfg)


def target_classes(system: AllOutputs, x: torch.Tensor, y: torch.Tensor, k: int | None) -> torch.Tensor:
    """(N, k) wrong classes per image, most likely first by merged's clean logits (APGD-T's order)."""
    with torch.no_grad(), eval_mode(system):
        logits = system(x)[0].float().clone()
    classes = logits.shape[1]
    k = min(MAX_TARGETS if k is None else k, classes - 1)
    logits.scatter_(1, y.view(-1, 1), float("-inf"))  # the true class is never a target
    return logits.argsort(1, descending=True)[:, :k]


def evasion_score(outputs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor:
    """(N,) 2 where merged is wrong and the heads agree (the monitor is evaded), 1 where merged is wrong but the
    heads disagree (the monitor would flag it), 0 where merged is right."""
    merged, main, second = (o.argmax(1) for o in outputs)
    wrong = merged != y
    return wrong.long() + (wrong & (main == second)).long()


def agree_attack(
    system: AllOutputs, x: torch.Tensor, y: torch.Tensor, cfg: PGDConfig, targets: int | None = None
) -> torch.Tensor:
    """Monitor evasion (module docstring): per image, the first target class whose example fools merged with the
    heads agreeing; an image no target evades keeps its best example (merged fooled, else its clean image)."""
    x = x.detach()
    with eval_mode(system):
        order = target_classes(system, x, y, targets)
        best, score = _start_from_pgd(system, x, y, cfg)
        for j in range(order.shape[1]):
            todo = (score < 2).nonzero().flatten()
            if len(todo) == 0:
                break
            xs, t = x[todo], order[todo, j]
            candidate = ascend(lambda x_adv, t=t: -summed_ce(system(x_adv), t), xs, cfg)  # descend toward class t
            with torch.no_grad():
                new = evasion_score(system(candidate), y[todo])
            better = new > score[todo]
            best[todo[better]], score[todo[better]] = candidate[better], new[better]
    return best


def _start_from_pgd(
    system: AllOutputs, x: torch.Tensor, y: torch.Tensor, cfg: PGDConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image the better (by ``evasion_score``) of the clean image and the plain PGD example on merged, crafted
    first with the same seed as the evaluation's ``pgdK`` on merged: so ``agree`` evades the monitor on at least
    every image the non-adaptive attack does, and the comparison between the two is fair by construction."""
    x_pgd = pgd(ModeView(system.net, MERGED), x, y, cfg)
    with torch.no_grad():
        clean, attacked = evasion_score(system(x), y), evasion_score(system(x_pgd), y)
    keep = attacked > clean
    return torch.where(keep.view(-1, 1, 1, 1), x_pgd, x), torch.maximum(clean, attacked)
