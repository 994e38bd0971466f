"""Parity: each exported graph, run by ONNX Runtime, against PyTorch in eval mode.

Measured on real validation images and on PGD-perturbed ones (adversarial inputs sit where logits
change fastest, so they are the harder parity check). Export fails if the max absolute logit difference
exceeds the tolerance: 1e-4 for fp32 graphs; 5e-2 for fp16 graphs (half precision keeps about three
significant digits, and logits of order 10 then differ by up to ~1e-2; argmax agreement is reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dhat_serve.contract import ALL, MERGED
from dhat_serve.runtime import GraphSessions, open_sessions

TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2}


@dataclass(frozen=True)
class Parity:
    """One parity measurement: the worst logit difference over ``n`` images and the tolerance it must meet."""

    max_abs_diff: float
    argmax_agreement: float
    n: int
    tolerance: float

    def to_dict(self) -> dict:
        """The manifest's ``parity`` entry."""
        return {
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "n": self.n,
            "tolerance": self.tolerance,
        }


def cpu_graph(mode: str, path: Path) -> GraphSessions:
    """``mode``'s graph on the CPU: parity is checked where every machine can run it, whatever serves it later."""
    return GraphSessions(open_sessions({mode: path}, provider="cpu"))


def graph_outputs(graph: GraphSessions, mode: str, x: np.ndarray) -> list[np.ndarray]:
    """Every output of ``mode``'s graph on (N, C, H, W) ``x``, in graph order, through ``ModelRuntime``'s ``predict``.

    The request mode that answers all of ``merged.onnx``'s outputs is ``all``; a head's graph has one.
    """
    request_mode = ALL if mode == MERGED else mode
    return list(graph.predict(request_mode, x, batch_size=256).values())


@torch.no_grad()
def torch_outputs(module: nn.Module, x: torch.Tensor, batch_size: int = 256) -> list[np.ndarray]:
    """Every output of ``module`` on (N, C, H, W) ``x`` as float32 arrays (N, classes), batch by batch."""
    parts = []
    for i in range(0, len(x), batch_size):
        out = module(x[i : i + batch_size])
        parts.append(out if isinstance(out, tuple) else (out,))
    return [torch.cat([p[k] for p in parts]).float().numpy() for k in range(len(parts[0]))]


def measure(module: nn.Module, graph: GraphSessions, mode: str, x: torch.Tensor, precision: str = "fp32") -> Parity:
    """Compare every output of ``module`` (eval mode) and ``mode``'s graph on images ``x``."""
    module.eval()
    ours = torch_outputs(module, x)
    theirs = graph_outputs(graph, mode, x.numpy())
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs, strict=True))
    agree = float(np.mean(ours[0].argmax(1) == theirs[0].argmax(1)))
    return Parity(diff, agree, len(x), TOLERANCE[precision])
