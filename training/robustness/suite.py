"""The evaluation suite: the attacks ``dhat eval`` runs, by name, each mapping clean images to adversarial ones.

- ``pgdK`` / ``pgdKxR``: L-inf PGD, K steps of 2.5 * eps / K (the paper), R random restarts;
- ``apgd-ce``, ``apgd-dlr-t``, ``autoattack``: pyautoattack (never re-implemented here);
- ``square``: pyautoattack's score-based Square attack, querying the ONNX Runtime session directly
  (no gradients, so it sees the graph exactly as deployed: a check against gradient masking);
- ``joint`` / ``jointK`` and ``agree`` / ``agreeK``: attacks on the three outputs together and on the
  head-agreement monitor (``training.robustness.adaptive``), crafted once against the whole system;
- ``marginK[xR]`` on one mode, ``systemK[xR]`` and ``evadeK[xR]`` on the whole system: APGD on logit-margin hinges,
  best iterate, restarts (``margin_attacks``, ``evasion``);
- ``strong``: the preset that names the whole suite (``STRONG``; ``expand_attacks``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

from dhat_serve.contract import LOGITS
from dhat_serve.runtime import GraphSessions
from training.attacks import PGDConfig, eval_mode, pgd, pgd_schedule
from training.robustness.adaptive import agree_attack, is_system_attack, joint_attack, system_config
from training.robustness.evasion import evade_attack
from training.robustness.margin_attacks import is_margin_attack, margin_attack, margin_config, system_attack

log = logging.getLogger(__name__)

FIXED = ("clean", "apgd-ce", "apgd-dlr", "apgd-dlr-t", "autoattack", "square")
PGD_NAME = re.compile(r"^pgd(\d+)(?:x(\d+))?(?:@([0-9.]+(?:/[0-9.]+)?))?$")
WHITE_BOX = ("pgd", "apgd-ce", "apgd-dlr", "apgd-dlr-t", "autoattack")
STRONG_PRESET = "strong"
STRONG = (
    "clean",
    "pgd20",
    "autoattack",
    "apgd-dlr",
    "margin20",
    "margin100",
    "margin500",
    "margin100x3",
    "margin100x5",
    "system100x3",
    "evade100",
    "square",
)
"""``--attacks strong`` (issue 35): AutoAttack's standard version (APGD-CE, APGD-T, FAB-T, Square on the twin),
APGD-DLR untargeted, the margin attack on each mode at 20 / 100 / 500 steps and 1 / 3 / 5 runs (the convergence
ladder, ``CONVERGENCE``), the system attacks on the three outputs (dual-head artifacts only), Square's 5,000 queries
on the ONNX graph itself, and (the transfer matrix, on by default) PGD-20 from every other mode. PGD-20 stays for
comparison with the committed reports. Every report gives each mode's per-image worst case over all of them."""
CONVERGENCE = {"steps": ("margin20", "margin100", "margin500"), "restarts": ("margin100", "margin100x3", "margin100x5")}
"""The strongest attack's budget ladders in the preset: accuracy should stop falling at the last rung
(``worst_case.ladders`` finds them among any margin attacks that ran)."""


def parse_attack(name: str) -> str:
    """``name`` if it names an evaluation attack, else a ``ValueError`` listing the valid names."""
    if name in FIXED or PGD_NAME.match(name) or is_system_attack(name) or is_margin_attack(name):
        return name
    raise ValueError(
        f"unknown attack {name!r}; valid: {STRONG_PRESET} (the whole suite), {', '.join(FIXED)}, pgdK, "
        "pgdKxR or pgdKxR@STEP (e.g. pgd20, pgd100x5, pgd100x5@1/255), marginK[xR], systemK[xR], "
        "evadeK[xR], joint[K], agree[K]"
    )


def expand_attacks(names: tuple[str, ...], dual: bool) -> tuple[str, ...]:
    """``names`` with ``strong`` replaced by the suite (``STRONG``; without the system attacks for a single-head
    artifact), duplicates dropped, order kept, ``clean`` first."""
    out: list[str] = []
    for name in names:
        for a in STRONG if name == STRONG_PRESET else (name,):
            if a not in out and (dual or name != STRONG_PRESET or not is_system_attack(a)):
                out.append(a)
    return tuple(sorted(out, key=lambda a: a != "clean"))


def is_white_box(name: str) -> bool:
    """Whether the attack uses the twin's gradients (compared with black-box ones to spot gradient masking)."""
    return name.startswith("pgd") or name in WHITE_BOX or is_system_attack(name) or is_margin_attack(name)


def pgd_config(name: str, eps: float) -> PGDConfig:
    """The attack behind a ``pgdK[xR][@STEP]`` name: K steps, R restarts, step STEP or the paper's 2.5 * eps / K.

    ``@STEP`` is for Table II, whose PGD step is 1/255 (§V), e.g. ``pgd100x5@1/255``.
    """
    m = PGD_NAME.match(name)
    if m is None:
        raise ValueError(f"{name!r} is not a PGD attack name (pgdK, pgdKxR or pgdKxR@STEP)")
    step = float(Fraction(m.group(3))) if m.group(3) else None
    return pgd_schedule(eps, steps=int(m.group(1)), restarts=int(m.group(2) or 1), step=step)


def graph_predict(rt: GraphSessions, mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A torch -> torch logits function of ``mode``'s graph as deployed (for score-based attacks)."""

    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(rt.predict(mode, x.detach().cpu().numpy())[LOGITS]).to(x.device)

    return predict


# AutoAttack's standard Square: 5,000 queries, p schedule of its 10,000-query design unscaled
# (resc_schedule=False). A smaller budget rescales the schedule, so p still shrinks over the run.
SQUARE_QUERIES = 5000


@dataclass(frozen=True)
class AttackContext:
    """What every attack of one evaluation shares: budget, seed, device, Square's query budget."""

    eps: float
    seed: int
    device: torch.device
    square_queries: int = SQUARE_QUERIES
    agree_targets: int | None = None  # None: min(9, classes - 1), as APGD-T


def run_attack(
    name: str, twin: nn.Module, rt: GraphSessions, mode: str, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext
) -> torch.Tensor:
    """Adversarial versions of (N, C, H, W) ``x`` for attack ``name`` on ``mode``; ``twin`` is in eval mode.

    White-box attacks differentiate ``twin`` (for a system attack, ``AllOutputs`` of the net, and ``mode`` is
    ``all``); Square queries ``mode``'s graph through ``rt``.
    """
    torch.manual_seed(ctx.seed)
    if name == "clean":
        return x.clone()
    if is_margin_attack(name):
        cfg_m = margin_config(name, ctx.eps)
        if name.startswith("margin"):
            return margin_attack(twin, x, y, cfg_m)
        if name.startswith("system"):
            return system_attack(twin, x, y, cfg_m)  # type: ignore[arg-type]
        return evade_attack(twin, x, y, cfg_m, ctx.agree_targets)  # type: ignore[arg-type]
    if is_system_attack(name):
        cfg = system_config(name, ctx.eps)
        if name.startswith("joint"):
            return joint_attack(twin, x, y, cfg)  # type: ignore[arg-type]
        return agree_attack(twin, x, y, cfg, ctx.agree_targets)  # type: ignore[arg-type]
    if name.startswith("pgd"):
        return pgd(twin, x, y, pgd_config(name, ctx.eps))
    if name == "square":
        from pyautoattack.square import SquareAttack

        attack = SquareAttack(
            graph_predict(rt, mode),
            norm="Linf",
            n_queries=ctx.square_queries,
            eps=ctx.eps,
            p_init=0.8,
            n_restarts=1,
            seed=ctx.seed,
            verbose=False,
            device=ctx.device,
            resc_schedule=ctx.square_queries < SQUARE_QUERIES,
        )
        return attack.perturb(x, y)
    from pyautoattack import AutoAttack

    with eval_mode(twin):
        if name == "autoattack":
            aa = AutoAttack(twin, device=ctx.device, eps=ctx.eps, norm="Linf", seed=ctx.seed, version="standard")
        else:
            which = {"apgd-ce": "apgd-ce", "apgd-dlr": "apgd-dlr", "apgd-dlr-t": "apgd-t"}[name]
            aa = AutoAttack(
                twin, attacks=[which], device=ctx.device, eps=ctx.eps, norm="Linf", seed=ctx.seed, version="custom"
            )
            aa.apgd.n_restarts = 1  # as in the standard AutoAttack ensemble
            if which == "apgd-t":
                aa.apgd_targeted.n_target_classes = min(9, int(twin(x[:1]).shape[1]) - 1)
        aa.logger.setLevel(logging.WARNING)
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv.detach()
