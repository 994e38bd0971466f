"""APGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness ...", Algorithm 1) for any objective.

pyautoattack's ``APGDAttack`` takes only its own losses (CE, DLR) of one logits tensor; the system attacks need a
per-image objective over three outputs and a notion of success of their own (fool ``merged`` with the heads
agreeing, ...). This is the same L-inf algorithm with the objective and the success passed in:

- step size 2 * eps, momentum 0.75 after the first step (their eq. 2-3);
- checkpoints w_j = ceil(p_j * steps), p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06); at each,
  an image's step is halved and it restarts from its best point when fewer than 75 % of the steps since the last
  checkpoint raised its objective (the paper's strict "<"; pyautoattack uses "<="), or its step was not halved last
  time and its best objective did not move (never at the first checkpoint, as in pyautoattack);
- **best iterate kept, success checked at every step**: the returned example of each image is the iterate with
  the highest ``rank`` (a success level: 1 = fooled, 2 = fooled and the monitor evaded, ...), ties broken by the
  objective; never the last iterate by default;
- restarts from fresh uniform points in the ball, only for images not yet at ``max_rank``; a run stops early
  once every image of it reaches ``max_rank``.

Tensors: images (N, C, H, W) in [0, 1]; ``fn(x_adv, idx)`` gets M of the N images and their indices ``idx`` (M,)
into the batch (to pick their labels or targets) and returns the objective (M,) (differentiable, to maximise) and
the rank (M,) int64 of the same forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from training.attacks import project

Objective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

MOMENTUM = 0.75  # Croce & Hein 2020, eq. 3 (alpha)
RHO = 0.75  # their condition 1: the fraction of steps that must raise the objective between checkpoints


@dataclass(frozen=True)
class APGDConfig:
    """L-inf budget, steps per run and runs (1 + restarts); the project's names ``marginKxR`` map here."""

    eps: float
    steps: int = 100
    restarts: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps <= 1.0 or self.steps < 1 or self.restarts < 1:
            raise ValueError(
                f"APGD needs eps in [0, 1], steps >= 1, restarts >= 1; got {self.eps}, {self.steps}, {self.restarts}"
            )


def checkpoints(steps: int) -> set[int]:
    """The iterations (1-based) at which APGD may halve a step: ceil(p_j * steps) for p_j > 0 (Algorithm 1)."""
    p, prev, out = 0.22, 0.0, set()
    while p <= 1.0:
        out.add(max(1, math.ceil(round(p * steps, 6))))  # round: 0.57 * 100 is 57.000000000000014 in floats
        p, prev = p + max(p - prev - 0.03, 0.06), p
    return out


def _eval(fn: Objective, x_adv: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Objective (M,), rank (M,) and the objective's gradient at ``x_adv`` (M, C, H, W)."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        loss, rank = fn(x_adv, idx)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
    return loss.detach(), rank.detach(), grad.detach()


def _better(rank: torch.Tensor, loss: torch.Tensor, best_rank: torch.Tensor, best_loss: torch.Tensor) -> torch.Tensor:
    """(N,) bool: a higher success level, or the same level with a higher objective."""
    return (rank > best_rank) | ((rank == best_rank) & (loss > best_loss))


def _keep(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *([1] * (new.dim() - 1))), new, old)


def _run(
    fn: Objective, x: torch.Tensor, idx: torch.Tensor, cfg: APGDConfig, max_rank: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One APGD run on images ``idx`` (``x`` are those images) from a uniform start: per image the best iterate, its
    rank and its objective."""
    x_adv = project(x + torch.empty_like(x).uniform_(-cfg.eps, cfg.eps), x, cfg.eps)
    loss, rank, grad = _eval(fn, x_adv, idx)
    out, out_rank, out_loss = x_adv.clone(), rank.clone(), loss.clone()
    x_max, grad_max, loss_max = x_adv.clone(), grad.clone(), loss.clone()  # the objective's best, for the schedule
    shape = (-1,) + (1,) * (x.dim() - 1)
    step = torch.full((len(x),), 2.0 * cfg.eps, device=x.device).view(shape)
    x_prev, prev_loss = x_adv.clone(), loss.clone()
    rises = torch.zeros(len(x), device=x.device)
    reduced = torch.ones(len(x), dtype=torch.bool, device=x.device)
    last_max, last_check = loss_max.clone(), 0
    marks = checkpoints(cfg.steps)
    for i in range(cfg.steps):
        z = project(x_adv + step * grad.sign(), x, cfg.eps)
        a = MOMENTUM if i > 0 else 1.0
        x_new = project(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev), x, cfg.eps)
        x_prev = x_adv
        x_adv = x_new
        loss, rank, grad = _eval(fn, x_adv, idx)
        better = _better(rank, loss, out_rank, out_loss)
        out, out_rank, out_loss = (
            _keep(better, x_adv, out),
            torch.where(better, rank, out_rank),
            torch.where(better, loss, out_loss),
        )
        rises += (loss > prev_loss).float()
        prev_loss = loss
        up = loss > loss_max
        x_max, grad_max, loss_max = _keep(up, x_adv, x_max), _keep(up, grad, grad_max), torch.where(up, loss, loss_max)
        if bool((out_rank >= max_rank).all()):
            break
        if i + 1 in marks:
            halve = (rises < RHO * (i + 1 - last_check)) | (~reduced & (last_max >= loss_max))
            step = torch.where(halve.view(shape), step / 2, step)
            x_adv, grad = _keep(halve, x_max, x_adv), _keep(halve, grad_max, grad)
            prev_loss = torch.where(halve, loss_max, prev_loss)  # the next rise is counted from where it restarts
            reduced, last_max, last_check, rises = halve, loss_max.clone(), i + 1, torch.zeros_like(rises)
    return out.detach(), out_rank, out_loss


def apgd(fn: Objective, x: torch.Tensor, cfg: APGDConfig, max_rank: int = 1) -> torch.Tensor:
    """(N, C, H, W) clean images -> per image the best iterate over ``cfg.restarts`` APGD runs (module docstring);
    images whose clean input already has ``max_rank`` (misclassified, say) are returned unchanged."""
    x = x.detach()
    every = torch.arange(len(x), device=x.device)
    with torch.no_grad():
        loss, rank = fn(x, every)
    best, best_rank, best_loss = x.clone(), rank.detach(), loss.detach()
    for _ in range(cfg.restarts):
        todo = (best_rank < max_rank).nonzero().flatten()
        if len(todo) == 0:
            break
        cand, cand_rank, cand_loss = _run(fn, x[todo], todo, cfg, max_rank)
        better = _better(cand_rank, cand_loss, best_rank[todo], best_loss[todo])
        idx = todo[better]
        best[idx], best_rank[idx], best_loss[idx] = cand[better], cand_rank[better], cand_loss[better]
    return best
