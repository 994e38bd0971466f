"""Per-channel normalisation as a module, so the network takes images in [0, 1].

Attacks, export and clients all work in [0, 1] pixel space (the RobustBench convention); the mean and
std come from the model config, not the weights file, so third-party checkpoints load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """(N, C, H, W) in [0, 1] -> (x - mean) / std, per channel. Identity when mean=0, std=1."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> per-channel standardised images, same shape."""
        return (x - self.mean) / self.std
