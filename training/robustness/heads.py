"""Head disagreement as a signal: what ``heads_agree`` in a ``mode=all`` answer is worth to a deployer.

The service's ``mode=all`` runs ``merged.onnx`` once and says whether the main and second heads agree.
If adversarial inputs make the heads disagree much more often than clean ones do, disagreement is a
cheap detector. Per attack and per mode the examples were crafted against, this reports the
disagreement rate on clean inputs (the false-alarm rate), on adversarial inputs (what the
``dhat_heads_disagree_total`` counter shows an operator under that traffic), and on the adversarial inputs
that succeeded (fooled the mode they were crafted against on an image it got right when clean): the
detection rate at that false-alarm rate, *against that attacker*. An attacker who does not know about the
monitor (PGD, AutoAttack on one mode) is the weak case; ``agree`` (``training.robustness.adaptive``) is the
attack built against it, and ``evasion`` counts what it achieves: merged wrong with the heads agreeing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dhat_serve.contract import ALL, MAIN, MERGED, REQUEST_OUTPUTS, SECOND
from dhat_serve.runtime import GraphSessions
from training.robustness.stats import accuracy_with_ci


def labels_by_mode(rt: GraphSessions, x: torch.Tensor) -> dict[str, np.ndarray]:
    """``{mode: (N,) predicted labels}`` for merged, main and second from one ``mode=all`` run per chunk."""
    outputs = rt.predict(ALL, x.detach().cpu().numpy())
    return {REQUEST_OUTPUTS[ALL][name]: logits.argmax(1) for name, logits in outputs.items()}


def rate(flags: np.ndarray) -> dict[str, Any]:
    """A rate with its 95 % interval (the interval of a proportion, as for accuracies)."""
    stats = accuracy_with_ci(flags)
    return {"rate": stats["accuracy"], "ci95": stats["ci95"], "n": stats["n"]}


def silent_errors(pred: dict[str, np.ndarray], yy: np.ndarray) -> dict[str, Any]:
    """What the monitor misses: merged wrong while main and second agree (``heads_agree``), and merged wrong while
    all three agree (``all_agree``), as rates over every image (N,)."""
    wrong = pred[MERGED] != yy
    heads = pred[MAIN] == pred[SECOND]
    return {"heads_agree": rate(wrong & heads), "all_agree": rate(wrong & heads & (pred[MERGED] == pred[MAIN]))}


def head_disagreement(
    rt: GraphSessions, x: torch.Tensor, y: torch.Tensor, adversarial: dict[str, dict[str, torch.Tensor]]
) -> dict[str, Any]:
    """``{"clean": rate, "clean_evasion": ..., "attacks": {attack: {crafted_against: {"adversarial": rate,
    "detection": rate, "evasion": ..., "fooled": count}}}}``.

    ``adversarial[target][attack]`` are (N, C, H, W) examples crafted against ``target`` (a mode, or ``all`` for
    the attacks on the three outputs together, whose success is judged on ``merged``, the default answer);
    ``x``, ``y`` the clean images and labels. Rates are fractions of images whose main and second heads disagree;
    ``evasion`` is ``silent_errors`` (merged wrong and unflagged) over all N images.
    """
    yy = y.numpy()
    clean_pred = labels_by_mode(rt, x)
    report: dict[str, Any] = {
        "clean": rate(clean_pred[MAIN] != clean_pred[SECOND]),
        "clean_evasion": silent_errors(clean_pred, yy),
        "attacks": {},
    }
    for target, by_attack in adversarial.items():
        judged = MERGED if target == ALL else target
        for name, x_adv in by_attack.items():
            if name == "clean":
                continue
            pred = labels_by_mode(rt, x_adv)
            fooled = (clean_pred[judged] == yy) & (pred[judged] != yy)
            disagree = pred[MAIN] != pred[SECOND]
            report["attacks"].setdefault(name, {})[target] = {
                "adversarial": rate(disagree),
                "detection": rate(disagree[fooled]) if fooled.any() else None,
                "fooled": int(fooled.sum()),
                "evasion": silent_errors(pred, yy),
            }
    return report
