"""What the protocol tests compare the server with: test images and the raw ONNX Runtime session's answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

MODELS = ("main", "second", "merged", "all")  # every request mode, as OIP model names


def images(n: int, seed: int = 0) -> np.ndarray:
    """(n, 1, 8, 8) float32 images in [0, 1): the session artifact's input shape."""
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)


def raw_outputs(artifact: Path, model: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """The graph's own answer for request mode ``model``: ``logits`` (and, for ``all``, both heads' logits
    from the merged graph), by a bare CPU session."""
    graph = "merged" if model == "all" else model
    session = ort.InferenceSession(str(artifact / f"{graph}.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()] if model == "all" else ["logits"]
    return dict(zip(names, session.run(names, {"images": x}), strict=True))
