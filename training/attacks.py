"""L-infinity PGD, shared by training and evaluation (torchattacks' shape, TRADES' conventions).

``pgd(model, x, y, cfg)`` returns adversarial images in [0, 1] within ``cfg.eps`` of ``x``. The model
runs in eval mode during the attack and every module's own training flag is restored afterwards
(snapshotted per module, so frozen parts stay frozen and nothing leaks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("ce", "kl")
STARTS = ("uniform", "normal", "none")


@dataclass(frozen=True)
class PGDConfig:
    """One L-inf PGD attack: eps and step in [0, 1] pixel units; ``loss='kl'`` ascends KL(f(x) || f(x_adv)).

    This is also a recipe's ``attack:`` block (training, validation), so recipe and attack share one
    description and one set of checks. The defaults are the paper's CIFAR training attack (§IV-A:
    eps 8/255, step 2/255, 10 steps).
    """

    eps: float = 8 / 255
    step: float = 2 / 255
    steps: int = 10
    restarts: int = 1
    random_start: str = "uniform"
    loss: str = "ce"

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"eps must be in [0, 1] (pixel scale; 8/255 = 0.0314), got {self.eps}")
        if self.step < 0 or self.steps < 0 or self.restarts < 1:
            raise ValueError(
                f"need step >= 0, steps >= 0, restarts >= 1; got {self.step}, {self.steps}, {self.restarts}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"unknown attack loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        if self.random_start not in STARTS:
            raise ValueError(f"unknown random_start {self.random_start!r}; valid: {', '.join(STARTS)}")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every module in eval mode; restore each module's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def pgd_schedule(eps: float, steps: int, restarts: int = 1, step: float | None = None) -> PGDConfig:
    """The evaluation PGD-K of the paper: K steps of 2.5 * eps / K (§IV) from a uniform start, cross-entropy.

    One definition for every evaluation attack (``pgd20``, ``pgd100x5``) and the accuracy-vs-eps curve;
    ``step`` replaces 2.5 * eps / K where a table fixes it (Table II: 1/255).
    """
    return PGDConfig(
        eps=eps,
        step=2.5 * eps / steps if step is None else step,
        steps=steps,
        restarts=restarts,
        random_start="uniform",
        loss="ce",
    )


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip onto the eps-ball around x and onto [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def _start(x: torch.Tensor, cfg: PGDConfig) -> torch.Tensor:
    if cfg.random_start == "uniform":
        return project(x + torch.empty_like(x).uniform_(-cfg.eps, cfg.eps), x, cfg.eps)
    if cfg.random_start == "normal":
        return project(x + 0.001 * torch.randn_like(x), x, cfg.eps)
    return x.clone()


def _objective(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, loss: str) -> torch.Tensor:
    if loss == "kl":
        return F.kl_div(F.log_softmax(logits, 1), target, reduction="sum")
    return F.cross_entropy(logits, y, reduction="sum")


def ascend(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, cfg: PGDConfig) -> torch.Tensor:
    """One PGD run: from ``cfg``'s random start, ``cfg.steps`` signed-gradient steps of ``cfg.step`` that increase
    ``objective`` (adversarial (N, C, H, W) images -> a scalar), each projected onto the eps-ball and [0, 1].

    The one PGD loop of the project: training's and evaluation's attacks (``pgd``) and the attacks on the whole
    dual-head system (``training.robustness.adaptive``) differ only in the objective they pass here.
    """
    x_adv = _start(x, cfg)
    for _ in range(cfg.steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(objective(x_adv), x_adv)
        x_adv = project(x_adv.detach() + cfg.step * grad.sign(), x, cfg.eps)
    return x_adv.detach()


def _one_run(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: PGDConfig, target: torch.Tensor | None
) -> torch.Tensor:
    return ascend(lambda x_adv: _objective(model(x_adv).float(), y, target, cfg.loss), x, cfg)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: PGDConfig) -> torch.Tensor:
    """(N, C, H, W) clean images in [0, 1] -> adversarial images, same shape.

    With several restarts an example keeps the first restart that fools the model (else the last).
    """
    x = x.detach()
    with eval_mode(model):
        target = None
        if cfg.loss == "kl":
            with torch.no_grad():
                target = F.softmax(model(x).float(), 1)
        best = _one_run(model, x, y, cfg, target)
        for _ in range(cfg.restarts - 1):
            with torch.no_grad():
                fooled = model(best).argmax(1) != y
            if bool(fooled.all()):
                break
            candidate = _one_run(model, x, y, cfg, target)
            best = torch.where(fooled.view(-1, 1, 1, 1), best, candidate)
    return best


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy in eval mode (flags restored), in [0, 1]."""
    with eval_mode(model):
        correct = sum(
            int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
            for i in range(0, len(y), batch_size)
        )
    return correct / max(len(y), 1)


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: PGDConfig, batch_size: int = 256) -> float:
    """Accuracy on PGD examples crafted batch by batch against ``model`` itself."""
    correct = 0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        x_adv = pgd(model, xb, yb, cfg)
        with torch.no_grad(), eval_mode(model):
            correct += int((model(x_adv).argmax(1) == yb).sum())
    return correct / max(len(y), 1)
