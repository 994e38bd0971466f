"""Phase 2 of ``dhat eval`` (rank 0): score the cached examples on graph and twin, with statistics.

Accuracies carry 95 % Wilson intervals; merged - main and merged - second are paired on the same images
(Newcombe's hybrid score interval, McNemar's p; one primary endpoint, the rest Holm-adjusted); the transfer matrix
scores each mode on the others' examples; a
white-box accuracy above a black-box or transfer one is flagged as a sign of gradient masking.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from dhat_serve.contract import MAIN, MERGED, SECOND
from training.models.dual_head import ModeView
from training.robustness.adaptive import is_system_attack, system_steps
from training.robustness.cache import CURVE_ATTACK, TRANSFER_ATTACK, Job, collect, craft_seconds, crafted_on, curve_eps
from training.robustness.margin_attacks import is_margin_attack, margin_config
from training.robustness.settings import SANITY_ATTACK, SANITY_EPS, WORST_CASE
from training.robustness.stats import accuracy_with_ci, adjust_secondaries, paired_difference, wilson
from training.robustness.suite import is_white_box, pgd_config
from training.robustness.twin import graph_logits, twin_logits

log = logging.getLogger(__name__)


def score(job: Job, mode: str, x_adv: torch.Tensor) -> tuple[dict[str, Any], np.ndarray]:
    """Accuracy of graph and twin on ``x_adv`` with 95 % intervals, their disagreements, and the graph's
    per-image correctness (N,) for the paired comparisons."""
    twin = ModeView(job.net, mode).eval()
    t, g = twin_logits(twin, x_adv).argmax(1), graph_logits(job.rt, mode, x_adv).argmax(1)
    yy = job.y.numpy()
    graph, twin_acc = accuracy_with_ci(g == yy), accuracy_with_ci(t == yy)
    return {
        "graph": graph["accuracy"],
        "graph_ci95": graph["ci95"],
        "twin": twin_acc["accuracy"],
        "twin_ci95": twin_acc["ci95"],
        "disagreements": int((t != g).sum()),
    }, g == yy


def score_mode(job: Job, mode: str) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """One mode's row of the report, its per-attack correctness vectors and its adversarial examples."""
    row: dict[str, Any] = {"attacks": {}}
    correct, adversarial = {}, {}
    for name in job.settings.attacks:
        adversarial[name] = collect(job, crafted_on(name, mode), name, job.eps)
        row["attacks"][name], correct[name] = score(job, mode, adversarial[name])
        r = row["attacks"][name]
        log.info(
            "%s %s: graph %.2f%% [%.2f, %.2f] twin %.2f%% (%d disagreements)",
            mode,
            name,
            100 * r["graph"],
            100 * r["graph_ci95"][0],
            100 * r["graph_ci95"][1],
            100 * r["twin"],
            r["disagreements"],
        )
    if job.settings.curve:
        row["curve"] = []
        for e in curve_eps(job):
            hits = int(
                (graph_logits(job.rt, mode, collect(job, mode, CURVE_ATTACK, e)).argmax(1) == job.y.numpy()).sum()
            )
            row["curve"].append({"eps": e, "graph": hits / len(job.y), "ci95": list(wilson(hits, len(job.y)))})
    return row, correct, adversarial


def crafting_times(job: Job) -> dict[str, dict[str, float]]:
    """Per mode and attack, the wall seconds phase 1 spent crafting (``cache.craft_seconds``); kept apart from
    ``results`` so that the numbers of a sharded run equal a one-process run's while the times differ."""
    return {
        mode: {name: craft_seconds(job, crafted_on(name, mode), name, job.eps) for name in job.settings.attacks}
        for mode in job.settings.modes
    }


def transfer_matrix(
    job: Job,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[float]]], dict[str, np.ndarray]]:
    """matrix[source][target]: graph accuracy of ``target`` on PGD-20 examples crafted on ``source``'s twin,
    the 95 % interval of each entry, and per target the (N,) images it got right under every other source's
    examples (the transfer attack's part of the worst case)."""
    acc: dict[str, dict[str, float]] = {}
    ci: dict[str, dict[str, list[float]]] = {}
    survived: dict[str, np.ndarray] = {}
    for src in job.settings.modes:
        x_adv = collect(job, src, TRANSFER_ATTACK, job.eps)
        acc[src], ci[src] = {}, {}
        for tgt in job.settings.modes:
            right = graph_logits(job.rt, tgt, x_adv).argmax(1) == job.y.numpy()
            acc[src][tgt], ci[src][tgt] = float(right.mean()), list(wilson(int(right.sum()), len(job.y)))
            if src != tgt:
                survived[tgt] = survived.get(tgt, np.ones(len(job.y), dtype=bool)) & right
    return acc, ci, survived


def sanity_correct(job: Job) -> dict[str, np.ndarray]:
    """Per mode, the (N,) images its graph still gets right under ``SANITY_ATTACK`` at ``SANITY_EPS`` (should be
    none)."""
    return {
        mode: graph_logits(job.rt, mode, collect(job, mode, SANITY_ATTACK, SANITY_EPS)).argmax(1) == job.y.numpy()
        for mode in job.settings.modes
    }


def comparisons(correct: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Per attack, merged minus main and merged minus second on the same images (paired 95 % interval)."""
    out: dict[str, dict[str, Any]] = {}
    if MERGED not in correct:
        return out
    for name, merged in correct[MERGED].items():
        out[name] = {
            f"merged-{head}": paired_difference(merged, correct[head][name])
            for head in (MAIN, SECOND)
            if head in correct and name in correct[head]
        }
    return out


def strongest_single_mode(attacks: tuple[str, ...] | list[str]) -> str | None:
    """The strongest attack on one mode alone that ran, by an order fixed before any result: AutoAttack, APGD-DLR-T,
    APGD-CE, APGD-DLR, then the margin attack, then the PGD, each with the most steps x restarts, then Square; None
    when only clean and the attacks on the
    whole system ran."""
    for name in ("autoattack", "apgd-dlr-t", "apgd-ce", "apgd-dlr"):
        if name in attacks:
            return name
    margins = [a for a in attacks if is_margin_attack(a) and not is_system_attack(a)]
    if margins:
        return max(
            margins,
            key=lambda a: (margin_config(a, 1.0).steps * margin_config(a, 1.0).restarts, -list(attacks).index(a)),
        )
    pgds = [a for a in attacks if a.startswith("pgd")]
    if pgds:
        return max(
            pgds, key=lambda a: (pgd_config(a, 1.0).steps * pgd_config(a, 1.0).restarts, -list(attacks).index(a))
        )
    return "square" if "square" in attacks else None


def default_primary(attacks: tuple[str, ...]) -> str | None:
    """The default primary endpoint: merged - main under the per-image worst case when AutoAttack ran beside another
    attack (a suite: its worst case is at least AutoAttack's strength; issue 35), else under
    ``strongest_single_mode`` (None: no primary, all secondary)."""
    if "autoattack" in attacks and len([a for a in attacks if a != "clean"]) > 1:
        return f"merged-main@{WORST_CASE}"
    attack = strongest_single_mode(attacks)
    return f"merged-main@{attack}" if attack else None


def mark_primary(
    comps: dict[str, dict[str, Any]], adaptive: dict[str, dict[str, Any]], primary: str | None
) -> str | None:
    """Make ``primary`` ("merged-main@pgd20") the report's primary endpoint and every other paired comparison a
    secondary one with its Holm-adjusted p (``stats.adjust_secondaries``); the primary's name, or None when there is
    none (asked for none, or no such comparison: a single-head artifact)."""
    name, _, attack = (primary or "").partition("@")
    chosen = comps.get(attack, {}).get(name)
    every = [c for by in (*comps.values(), *adaptive.values()) for c in by.values()]
    adjust_secondaries(every, chosen)
    return primary if chosen is not None else None


def mode_only_reference(name: str, attacks: dict[str, Any]) -> str | None:
    """The attack on one mode alone that a system attack is set beside: ``pgdK`` of the same K when it ran, else the
    first white-box one of ``strongest_single_mode``'s fixed order (never chosen by its result; Square, a black-box
    attack, is not a reference), else None."""
    steps = system_steps(name)
    runs = margin_config(name, 1.0).restarts if is_margin_attack(name) else 1
    own = [f"margin{steps}x{runs}", f"margin{steps}"] if is_margin_attack(name) else [f"pgd{steps}"]
    for ref in own:  # the same loss family, steps and runs where it ran (so a difference is the system's)
        if ref in attacks:
            return ref
    return strongest_single_mode([a for a in attacks if a != "square"])


def adaptive_comparisons(
    results: dict[str, Any], correct: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, Any]]:
    """Per system attack (joint, agree) and mode: its accuracy minus that of the attack on the mode alone, paired
    on the same images; ``{attack: {mode: {"against": name, **paired_difference}}}``."""
    out: dict[str, dict[str, Any]] = {}
    for mode, row in results.items():
        for name in row["attacks"]:
            ref = mode_only_reference(name, row["attacks"]) if is_system_attack(name) else None
            if ref is not None:
                out.setdefault(name, {})[mode] = {
                    "against": ref,
                    **paired_difference(correct[mode][name], correct[mode][ref]),
                }
    return out


def adaptive_warnings(adaptive: dict[str, dict[str, Any]]) -> list[str]:
    """A system attack that leaves a mode less accurate than the attack on that mode alone: the mode-only number
    overstated the robustness an attacker who knows the system faces."""
    return [
        f"{mode}: {100 * -c['difference']:.2f} points lower under {name} than under {c['against']} on {mode} alone "
        f"(paired interval [{100 * c['ci95'][0]:+.2f}, {100 * c['ci95'][1]:+.2f}], McNemar p {c['mcnemar_p']:.3g}): "
        f"the {c['against']} number overstated {mode}'s robustness"
        for name, by_mode in adaptive.items()
        for mode, c in by_mode.items()
        if c["difference"] < 0
    ]


def masking_warnings(results: dict[str, Any], transfer: dict[str, dict[str, float]]) -> list[str]:
    """White-box robust accuracy above black-box (Square) or transfer accuracy hints at gradient masking."""
    warnings = []
    for mode, row in results.items():
        white = [v["graph"] for k, v in row["attacks"].items() if is_white_box(k)]
        if not white:
            continue
        best_white = min(white)
        if "square" in row["attacks"] and row["attacks"]["square"]["graph"] < best_white:
            warnings.append(
                f"{mode}: white-box accuracy {100 * best_white:.2f}% is higher than Square (black-box) "
                f"{100 * row['attacks']['square']['graph']:.2f}%: a sign of gradient masking"
            )
        others = [transfer[src][mode] for src in transfer if src != mode and mode in transfer[src]]
        if others and min(others) < best_white:
            warnings.append(
                f"{mode}: white-box accuracy {100 * best_white:.2f}% is higher than transfer accuracy "
                f"{100 * min(others):.2f}%: a sign of gradient masking"
            )
    return warnings
