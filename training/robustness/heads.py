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

from dhat_serve.contract import ALL_OUTPUT_MODES
from dhat_serve.runtime import ModelRuntime
from training.robustness.stats import accuracy_with_ci

ALL_BATCH = 512


def heads_and_merged(rt: ModelRuntime, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(merged, main, second) predicted labels, each (N,), from ``merged.onnx`` as ``mode=all`` runs it."""
    arr = x.detach().cpu().numpy().astype(np.float32)
    parts = [rt.run_all(arr[i : i + ALL_BATCH]) for i in range(0, len(arr), ALL_BATCH)]
    return tuple(np.concatenate([p[k] for p in parts]).argmax(1) for k in range(3))  # type: ignore[return-value]


def rate(flags: np.ndarray) -> dict[str, Any]:
    """A rate with its 95 % interval (the interval of a proportion, as for accuracies)."""
    stats = accuracy_with_ci(flags)
    return {"rate": stats["accuracy"], "ci95": stats["ci95"], "n": stats["n"]}


def head_disagreement(rt: ModelRuntime, x: torch.Tensor, y: torch.Tensor,
                      adversarial: dict[str, dict[str, torch.Tensor]]) -> dict[str, Any]:
    """``{"clean": rate, "attacks": {attack: {crafted_against: {"adversarial": rate, "detection": rate}}}}``.

    ``adversarial[mode][attack]`` are (N, C, H, W) examples crafted against ``mode``; ``x``, ``y`` the
    clean images and labels. Rates are fractions of images whose main and second heads disagree.
    """
    yy = y.numpy()
    merged0, main0, second0 = heads_and_merged(rt, x)
    clean_pred = dict(zip(ALL_OUTPUT_MODES, (merged0, main0, second0)))
    report: dict[str, Any] = {"clean": rate(main0 != second0), "attacks": {}}
    for mode, by_attack in adversarial.items():
        for name, x_adv in by_attack.items():
            if name == "clean":
                continue
            merged, main, second = heads_and_merged(rt, x_adv)
            pred = dict(zip(ALL_OUTPUT_MODES, (merged, main, second)))[mode]
            fooled = (clean_pred[mode] == yy) & (pred != yy)
            disagree = main != second
            report["attacks"].setdefault(name, {})[mode] = {
                "adversarial": rate(disagree), "detection": rate(disagree[fooled]), "fooled": int(fooled.sum())}
    return report
