"""Paired comparisons across reports: is head A of one artifact better than head B of another?

``dhat eval`` compares merged with the heads of one artifact. A fair-compute baseline is a different
artifact (a single-head run), so ``report.json`` keeps each (mode, attack)'s per-image correctness
(``pack_correct``: bits as hex, 1,250 bytes per 10,000 images) and a digest of the test labels; two
reports on the same test images (same data set, n and labels) can then be compared image by image
with the same paired interval (Newcombe's hybrid score) and exact McNemar test as within one report.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from training.robustness.settings import EvaluationError
from training.robustness.stats import paired_difference


def pack_correct(correct: np.ndarray) -> str:
    """A boolean (N,) vector as hex of its packed bits (``unpack_correct`` needs N back)."""
    return np.packbits(correct.astype(bool)).tobytes().hex()


def unpack_correct(packed: str, n: int) -> np.ndarray:
    """The boolean (N,) vector ``pack_correct`` wrote."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(packed), dtype=np.uint8))[:n].astype(bool)


def labels_digest(y: torch.Tensor) -> str:
    """sha256 of the (N,) int64 test labels: two reports with the same digest scored the same images' labels."""
    return hashlib.sha256(y.to(torch.int64).numpy().tobytes()).hexdigest()


def correctness(report: dict[str, Any], mode: str, attack: str) -> np.ndarray:
    """The per-image correctness of ``mode`` under ``attack`` in ``report`` (an error naming what is missing)."""
    try:
        packed = report["correct"][mode][attack]
    except KeyError:
        raise EvaluationError(
            f"report of {report['artifact']['name']} has no per-image result for {mode} / {attack} "
            "(re-run dhat eval with that mode and attack)"
        ) from None
    return unpack_correct(packed, report["data"]["n"])


def same_images(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Refuse to pair two reports that did not score the same test images under the same budget."""
    keys = ("dataset", "n", "labels_sha256")
    if any(a["data"].get(k) != b["data"].get(k) for k in keys) or a["data"].get("labels_sha256") is None:
        raise EvaluationError(
            f"the reports scored different test images ({[a['data'].get(k) for k in keys]} vs "
            f"{[b['data'].get(k) for k in keys]}): a paired comparison needs the same ones"
        )
    if abs(a["eps"] - b["eps"]) > 1e-12:
        raise EvaluationError(f"the reports used different eps ({a['eps']} vs {b['eps']})")


def compare(a: dict[str, Any], mode_a: str, b: dict[str, Any], mode_b: str, attack: str) -> dict[str, Any]:
    """Accuracy of (``a``, ``mode_a``) minus (``b``, ``mode_b``) under ``attack``, paired over the same images."""
    same_images(a, b)
    return paired_difference(correctness(a, mode_a, attack), correctness(b, mode_b, attack))
