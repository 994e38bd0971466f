"""What ``/classify`` and ``/predict`` answer, built from a request's outputs as the runtime returns them.

``ModelRuntime.run`` (through the engine) returns ``{output name: (N, classes) logits}`` for a request
mode; ``contract.REQUEST_OUTPUTS`` says which mode each output belongs to. An answer is keyed by mode:

- one mode: ``{"mode": m, **result, "artifact": ...}``;
- ``all`` (one run of ``merged.onnx``): ``{"mode": "all", "modes": {"merged": result, "main": result,
  "second": result}, "heads_agree": ..., "all_agree": ..., "artifact": ...}`` on both endpoints, where
  ``heads_agree`` says whether the main and second heads pick the same class and ``all_agree`` whether
  all three do (one bool for ``/classify``, one per image for ``/predict``).

``result`` is ``describe`` for one image (label, class name, confidence, top-k) and ``batch_result`` for
a batch (labels, probabilities, logits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dhat_serve.contract import ALL, LOGITS, MAIN, REQUEST_OUTPUTS, SECOND
from dhat_serve.errors import BadRequest

DEFAULT_TOP_K = 5  # /classify's top_k when the request gives none (capped at the number of classes)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, classes) logits, stable for large logits (max subtracted)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def check_top_k(top_k: int | None, num_classes: int) -> int:
    """``top_k`` itself when 1 <= top_k <= classes; otherwise a ``BadRequest`` (HTTP 400), never a clipped value.

    Not given (None), it is ``DEFAULT_TOP_K`` or every class when a model has fewer (a 3-class folder model).
    """
    if top_k is None:
        return min(DEFAULT_TOP_K, num_classes)
    if not 1 <= top_k <= num_classes:
        raise BadRequest(f"top_k must be between 1 and {num_classes}, got {top_k}")
    return top_k


def describe(logits: np.ndarray, class_names: Sequence[str], top_k: int) -> dict[str, Any]:
    """One image's logits (C,) -> label, class name, confidence and the top-k list."""
    probs = softmax(logits.astype(np.float64))
    order = np.argsort(-probs)[:top_k]
    label = int(order[0])
    return {
        "label": label,
        "class_name": class_names[label],
        "confidence": float(probs[label]),
        "top_k": [{"label": int(i), "class_name": class_names[int(i)], "probability": float(probs[i])} for i in order],
    }


def _finite_rows(a: np.ndarray) -> list[list[float]]:
    return [[float(v) if math.isfinite(v) else 0.0 for v in row] for row in a.tolist()]


def batch_result(logits: np.ndarray) -> dict[str, Any]:
    """(N, C) logits -> labels, probabilities and logits as lists (JSON-safe finite floats)."""
    probs = softmax(logits.astype(np.float64))
    return {
        "labels": logits.argmax(-1).astype(int).tolist(),
        "probabilities": _finite_rows(probs),
        LOGITS: _finite_rows(logits),
    }


def by_mode(mode: str, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{output name: logits}`` -> ``{mode: logits}`` through the contract's table (no positional guessing)."""
    return {REQUEST_OUTPUTS[mode][name]: array for name, array in outputs.items()}


def _answer(
    mode: str, results: dict[str, Any], labels: dict[str, Any], artifact: dict[str, str], per_image: bool
) -> dict[str, Any]:
    """The one answer shape: a single mode's result inline, or ``modes`` + agreement flags for ``all``."""
    if mode != ALL:
        return {"mode": mode, **results[mode], "artifact": artifact}
    if per_image:
        rows = list(zip(*labels.values(), strict=True))
        heads = [a == b for a, b in zip(labels[MAIN], labels[SECOND], strict=True)]
        agree: Any = [len(set(r)) == 1 for r in rows]
    else:
        heads, agree = labels[MAIN] == labels[SECOND], len(set(labels.values())) == 1
    return {"mode": ALL, "modes": results, "heads_agree": heads, "all_agree": agree, "artifact": artifact}


def classify_answer(
    mode: str,
    outputs: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    top_k: int,
    artifact: dict[str, str],
) -> dict[str, Any]:
    """``/classify``'s answer for one image; ``outputs`` hold (1, classes) logits per output name."""
    results = {mode: describe(logits[0], class_names, top_k) for mode, logits in by_mode(mode, outputs).items()}
    return _answer(mode, results, {m: r["label"] for m, r in results.items()}, artifact, per_image=False)


def predict_answer(mode: str, outputs: Mapping[str, np.ndarray], artifact: dict[str, str]) -> dict[str, Any]:
    """``/predict``'s answer for a batch; ``outputs`` hold (N, classes) logits per output name."""
    results = {mode: batch_result(logits) for mode, logits in by_mode(mode, outputs).items()}
    return _answer(mode, results, {m: r["labels"] for m, r in results.items()}, artifact, per_image=True)
