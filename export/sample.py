"""A tiny exported artifact from random weights (5k-parameter WRN, 8x8 grey images), exported and parity-checked
like a trained one: what the tests and the serving benchmarks run when the model's accuracy does not matter."""

from __future__ import annotations

from pathlib import Path

import torch

from training.checkpoints import CheckpointMeta, save_checkpoint
from training.models.registry import ModelConfig, create_model

ALL_TRAINED = {"main_head": True, "second_head": True, "merger": True}


def make_checkpoint(path: Path, cfg: ModelConfig, trained: dict[str, bool] = ALL_TRAINED, seed: int = 0) -> Path:
    """A freshly initialised network with non-trivial BatchNorm statistics, saved as a checkpoint."""
    torch.manual_seed(seed)
    net = create_model(cfg)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    save_checkpoint(path, net, cfg, dict(trained), meta=CheckpointMeta(recipe="test", eps=0.1, validation_eps=0.1))
    return path


# the smallest network the WRN family builds (training.models.registry)
TINY_CFG = ModelConfig(arch="wrn-10-1-s4", layout="symmetric", in_channels=1, input_size=8, mean=(0.3,), std=(0.4,))


def make_artifact(root: Path) -> tuple[Path, Path]:
    """A tiny exported artifact (5k-parameter WRN, 8x8 grey images): (checkpoint dir, artifact dir)."""
    from export.artifact import export_artifact

    ckpt = make_checkpoint(root / "ckpt", TINY_CFG)
    export_artifact(ckpt, root / "artifact", parity_n=16)
    return ckpt, root / "artifact"
