"""Parity: each exported graph, run by ONNX Runtime, against PyTorch in eval mode.

Measured on real validation images and on PGD-perturbed ones (adversarial inputs sit where logits
change fastest, so they are the harder parity check). Export fails if the max absolute logit difference
exceeds the tolerance: 1e-4 for fp32 graphs; 5e-2 for fp16 graphs (half precision keeps about three
significant digits, and logits of order 10 then differ by up to ~1e-2; argmax agreement is reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from dhat_serve.contract import INPUT_NAME

TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2}


@dataclass(frozen=True)
class Parity:
    """One parity measurement: the worst logit difference over ``n`` images and the tolerance it must meet."""

    max_abs_diff: float
    argmax_agreement: float
    n: int
    tolerance: float

    @property
    def ok(self) -> bool:
        """Whether the graph is close enough to PyTorch to be shipped."""
        return self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        """The manifest's ``parity`` entry."""
        return {"max_abs_diff": self.max_abs_diff, "argmax_agreement": self.argmax_agreement, "n": self.n,
                "tolerance": self.tolerance}


def cpu_session(path: str) -> ort.InferenceSession:
    """A CPU session: parity is checked where every machine can run it, whatever serves it later."""
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def run_session(session: ort.InferenceSession, x: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
    """All outputs of ``session`` on ``x`` (N, C, H, W), concatenated over batches."""
    parts = [session.run(None, {INPUT_NAME: x[i : i + batch_size]}) for i in range(0, len(x), batch_size)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


@torch.no_grad()
def torch_outputs(module: nn.Module, x: torch.Tensor, batch_size: int = 256) -> list[np.ndarray]:
    """Every output of ``module`` on (N, C, H, W) ``x`` as float32 arrays (N, classes), batch by batch."""
    parts = []
    for i in range(0, len(x), batch_size):
        out = module(x[i : i + batch_size])
        parts.append(out if isinstance(out, tuple) else (out,))
    return [torch.cat([p[k] for p in parts]).float().numpy() for k in range(len(parts[0]))]


def measure(module: nn.Module, session: ort.InferenceSession, x: torch.Tensor, precision: str = "fp32") -> Parity:
    """Compare every output of ``module`` (eval mode) and ``session`` on images ``x``."""
    module.eval()
    ours = torch_outputs(module, x)
    theirs = run_session(session, x.numpy().astype(np.float32))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
    agree = float(np.mean(ours[0].argmax(1) == theirs[0].argmax(1)))
    return Parity(diff, agree, len(x), TOLERANCE[precision])
