"""Head disagreement as a signal: what ``heads_agree`` in a ``mode=all`` answer is worth to a deployer.

The service's ``mode=all`` runs ``merged.onnx`` once and says whether the main and second heads agree.
If adversarial inputs make the heads disagree much more often than clean ones do, disagreement is a
cheap detector. Per attack and per mode the examples were crafted against, this reports the
disagreement rate on clean inputs (the false-alarm rate), on adversarial inputs, and on the adversarial
inputs that succeeded (fooled the mode they were crafted against on an image it got right when clean):
the detection rate at that false-alarm rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dhat_serve.contract import ALL, MAIN, REQUEST_OUTPUTS, SECOND
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


def head_disagreement(rt: GraphSessions, x: torch.Tensor, y: torch.Tensor,
                      adversarial: dict[str, dict[str, torch.Tensor]]) -> dict[str, Any]:
    """``{"clean": rate, "attacks": {attack: {crafted_against: {"adversarial": rate, "detection": rate}}}}``.

    ``adversarial[mode][attack]`` are (N, C, H, W) examples crafted against ``mode``; ``x``, ``y`` the
    clean images and labels. Rates are fractions of images whose main and second heads disagree.
    """
    yy = y.numpy()
    clean_pred = labels_by_mode(rt, x)
    report: dict[str, Any] = {"clean": rate(clean_pred[MAIN] != clean_pred[SECOND]), "attacks": {}}
    for mode, by_attack in adversarial.items():
        for name, x_adv in by_attack.items():
            if name == "clean":
                continue
            pred = labels_by_mode(rt, x_adv)
            fooled = (clean_pred[mode] == yy) & (pred[mode] != yy)
            disagree = pred[MAIN] != pred[SECOND]
            report["attacks"].setdefault(name, {})[mode] = {
                "adversarial": rate(disagree), "detection": rate(disagree[fooled]), "fooled": int(fooled.sum())}
    return report
