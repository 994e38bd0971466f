"""Shifted traffic: the test images under common corruptions, for accuracy and for the head-disagreement rate.

The README used to say that head disagreement "rises under adversarial or shifted traffic"; this measures the
second half. Three corruptions of Hendrycks & Dietterich 2019 ("Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations"), each at three severities taken from CIFAR-10-C's levels 1, 3 and 5, applied with
torchvision's own transforms (``torchvision.transforms.v2.functional``): additive Gaussian noise (sigma 0.04,
0.08, 0.10, clipped to [0, 1]), Gaussian blur (sigma 0.4, 0.7, 1.0; kernel 2 * ceil(3 sigma) + 1) and lowered
contrast (factor 0.75, 0.4, 0.15 toward the image's mean grey). The severities are CIFAR-10-C's; using them on
the 8x8 digits and 16x16 Fashion-MNIST images is the project's choice. Noise is drawn from a generator seeded
by the evaluation's seed, so a corruption is the same tensor on every run and machine with that seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from dhat_serve.contract import LOGITS, MAIN, MERGED, SECOND
from dhat_serve.runtime import GraphSessions
from training.robustness.heads import labels_by_mode, rate
from training.robustness.stats import accuracy_with_ci

SEVERITIES: dict[str, tuple[float, ...]] = {
    "gaussian-noise": (0.04, 0.08, 0.10),
    "gaussian-blur": (0.4, 0.7, 1.0),
    "contrast": (0.75, 0.4, 0.15),
}


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int) -> torch.Tensor:
    """(N, C, H, W) images in [0, 1] -> the same images under corruption ``name`` at ``severity`` (1-3), in [0, 1]."""
    level = SEVERITIES[name][severity - 1]
    if name == "gaussian-noise":
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
        return (x + level * noise.to(x.device)).clamp(0.0, 1.0)
    if name == "gaussian-blur":
        k = 2 * math.ceil(3 * level) + 1
        return TF.gaussian_blur(x, kernel_size=[k, k], sigma=[level, level]).clamp(0.0, 1.0)
    if x.shape[1] == 1:  # torchvision's adjust_contrast blends toward the grey mean; grey images are their own grey
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * level + mean).clamp(0.0, 1.0)
    return TF.adjust_contrast(x, level).clamp(0.0, 1.0)


def corruptions() -> list[tuple[str, int]]:
    """Every (corruption, severity) pair the report measures, in order."""
    return [(name, s) for name in SEVERITIES for s in range(1, len(SEVERITIES[name]) + 1)]


def shifted_traffic(
    rt: GraphSessions, x: torch.Tensor, y: torch.Tensor, modes: tuple[str, ...], seed: int
) -> list[dict[str, Any]]:
    """Per corruption and severity: each mode's graph accuracy (95 % interval) and, for a dual-head artifact,
    the rate at which main and second disagree (one ``mode=all`` run), beside what the clean images give."""
    yy = y.numpy()
    rows = []
    for name, severity in [("clean", 0), *corruptions()]:
        xs = x if name == "clean" else corrupt(x, name, severity, seed)
        if MERGED in modes or (SECOND in modes and MAIN in modes):
            pred = labels_by_mode(rt, xs)
        else:
            pred = {m: rt.predict(m, xs.numpy())[LOGITS].argmax(1) for m in modes}
        row: dict[str, Any] = {
            "corruption": name,
            "severity": severity,
            "level": SEVERITIES[name][severity - 1] if severity else None,
            "accuracy": {m: _acc(pred[m] == yy) for m in modes},
        }
        if SECOND in pred and MAIN in pred:
            row["disagreement"] = rate(pred[MAIN] != pred[SECOND])
        rows.append(row)
    return rows


def _acc(flags: np.ndarray) -> dict[str, Any]:
    stats = accuracy_with_ci(flags)
    return {"graph": stats["accuracy"], "ci95": stats["ci95"]}
