"""``evadeK[xR]``: the head-agreement monitor evaded, every way it can be (issue 35).

``mode=all`` reports ``heads_agree`` and the service counts ``dhat_heads_disagree_total``: an operator reads head
disagreement as a sign of attack. The monitor is evaded when ``merged`` is wrong and ``main == second``, which
happens two ways, and this attack tries both, per image, until one works (APGD on margin hinges, best iterate,
success checked at every step; ``training.robustness.apgd``):

0. the ``marginK`` example on ``merged`` alone (so ``evade`` is never weaker against ``merged`` than that attack);
1. **both heads kept on the true class while the merger flips**: objective ``hinge(m_merged) + hinge(-m_main) +
   hinge(-m_second)``, every term clamped at ``KAPPA`` (a satisfied term stops pulling); the monitor sees two agreeing,
   correct heads;
2. **both heads moved to one wrong class t** with ``merged`` wrong, for each of the top wrong classes by merged's
   clean logits (APGD-T's order; min(9, classes - 1) unless asked): ``hinge(m_merged) + hinge(tm_main(t)) +
   hinge(tm_second(t))`` with ``tm`` the targeted margin.

Each image keeps its highest ``adaptive.evasion_score`` (2 evaded, 1 merged fooled but flagged, 0 merged right); while
crafting, a success counts only when every decision in it is held by more than ``margins.TAU``.
Tensors: images (N, C, H, W) in [0, 1], labels (N,).
"""

from __future__ import annotations

import torch

from dhat_serve.contract import MERGED
from training.attacks import eval_mode
from training.models.dual_head import AllOutputs, ModeView
from training.robustness.adaptive import evasion_score, target_classes
from training.robustness.apgd import APGDConfig, Objective, apgd
from training.robustness.margin_attacks import margin_attack
from training.robustness.margins import KAPPA, TAU, hinge, margin, targeted_margin, top_gap

EVADED = 2


def firm_evasion_score(outputs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor:
    """(N,) ``adaptive.evasion_score`` with every decision held by more than ``margins.TAU`` (merged wrong by that
    margin; the heads agreeing, each by that gap over its runner-up), so what the twin found survives on the graph."""
    merged, main, second = outputs
    wrong = margin(merged, y) > TAU
    agree = (main.argmax(1) == second.argmax(1)) & (top_gap(main) > TAU) & (top_gap(second) > TAU)
    return wrong.long() + (wrong & agree).long()


def heads_stay_true(system: AllOutputs, y: torch.Tensor) -> Objective:
    """Way 1: flip ``merged``, keep both heads on ``y``."""

    def fn(xa: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        merged, main, second = system(xa)
        yi = y[idx]
        objective = (
            hinge(margin(merged, yi), KAPPA) + hinge(-margin(main, yi), KAPPA) + hinge(-margin(second, yi), KAPPA)
        )
        return objective, firm_evasion_score((merged, main, second), yi)

    return fn


def heads_move_to(system: AllOutputs, y: torch.Tensor, t: torch.Tensor) -> Objective:
    """Way 2: both heads to the wrong class ``t`` (N,), ``merged`` anywhere but ``y``."""

    def fn(xa: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        merged, main, second = system(xa)
        yi, ti = y[idx], t[idx]
        objective = (
            hinge(margin(merged, yi), KAPPA)
            + hinge(targeted_margin(main, ti), KAPPA)
            + hinge(targeted_margin(second, ti), KAPPA)
        )
        return objective, firm_evasion_score((merged, main, second), yi)

    return fn


def evade_attack(
    system: AllOutputs, x: torch.Tensor, y: torch.Tensor, cfg: APGDConfig, targets: int | None = None
) -> torch.Tensor:
    """Per image the example with the highest evasion score over ways 0-2 (module docstring): (N, C, H, W)."""
    x = x.detach()
    with eval_mode(system):
        start = margin_attack(ModeView(system.net, MERGED), x, y, cfg)
        with torch.no_grad():
            clean, attacked = evasion_score(system(x), y), evasion_score(system(start), y)
        keep = attacked > clean
        best, score = torch.where(keep.view(-1, 1, 1, 1), start, x), torch.maximum(clean, attacked)
        order = target_classes(system, x, y, targets)
        for j in range(-1, order.shape[1]):  # way 1 (j = -1), then way 2 for each target in turn
            todo = todo_of(score)
            if len(todo) == 0:
                break
            yt = y[todo]
            fn = heads_stay_true(system, yt) if j < 0 else heads_move_to(system, yt, order[todo, j])
            candidate = apgd(fn, x[todo], cfg, max_rank=EVADED)
            with torch.no_grad():
                new = evasion_score(system(candidate), yt)
            better = new > score[todo]
            best[todo[better]], score[todo[better]] = candidate[better], new[better]
    return best


def todo_of(score: torch.Tensor) -> torch.Tensor:
    """Indices of the images not yet evading the monitor."""
    return (score < EVADED).nonzero().flatten()
