"""The two sides of every evaluation: the PyTorch twin the attacks differentiate and the graph that scores.

The twin is the run's final checkpoint, refused unless its weights are the ones the graph was exported
from (the manifest's ``checkpoint_sha256``) and its logits match the graph's on clean images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dhat_serve.contract import LOGITS
from dhat_serve.manifest import Manifest, sha256_file
from dhat_serve.runtime import ModelRuntime
from training.checkpoints import WEIGHTS_FILE, load_checkpoint
from training.robustness.settings import EvaluationError
from training.run_dir import RunDir


def resolve_device(device: str | None) -> str:
    """The torch device to attack on: ``--device``, else CUDA when visible; an impossible CUDA request says why."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvaluationError(f"--device {device}: torch sees no CUDA device here; use --device cpu")
    return device


def load_twin(run_dir: Path, manifest: Manifest) -> tuple[torch.nn.Module, Path]:
    """The run's final checkpoint, refused unless its weights are the ones the graph was exported from."""
    ckpt = RunDir(run_dir).final_checkpoint()
    weights = ckpt / WEIGHTS_FILE
    if not weights.is_file():
        raise EvaluationError(f"{run_dir}: no final checkpoint at {ckpt}; is this the run the artifact came from?")
    expected = manifest.provenance.get("checkpoint_sha256")
    if expected and sha256_file(weights) != expected:
        raise EvaluationError(
            f"the run's weights ({weights}) do not match the graph: the manifest was exported "
            "from a checkpoint with another sha256; pass the --run the artifact came from"
        )
    net, _, _ = load_checkpoint(ckpt)
    return net.eval(), ckpt


def graph_logits(rt: ModelRuntime, mode: str, x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) images -> (N, classes) logits of ``mode``'s graph, as deployed (ONNX Runtime)."""
    return rt.predict(mode, x.detach().cpu().numpy())[LOGITS]


@torch.no_grad()
def twin_logits(twin: torch.nn.Module, x: torch.Tensor, batch: int = 512) -> np.ndarray:
    """(N, C, H, W) images -> (N, classes) logits of the PyTorch twin the attacks differentiate."""
    device = next(twin.parameters()).device
    return torch.cat([twin(x[i : i + batch].to(device)) for i in range(0, len(x), batch)]).float().cpu().numpy()


def check_twin(twin: torch.nn.Module, rt: ModelRuntime, mode: str, x: torch.Tensor, tolerance: float) -> float:
    """Max |twin - graph| logit difference on clean ``x``; refuse to attack a twin that is not the graph."""
    diff = float(np.abs(twin_logits(twin, x) - graph_logits(rt, mode, x)).max())
    if diff > tolerance:
        raise EvaluationError(
            f"mode {mode}: the PyTorch twin differs from {rt.manifest.modes[mode].file} by "
            f"{diff:.3g} on clean data (> {tolerance:g}); refusing to evaluate"
        )
    return diff
