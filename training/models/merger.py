"""The paper's lightweight merger CNN (§III-B, Fig. 4-6), vectorised.

Line by line against the paper, for C classes and P = C(C-1)/2 unordered class pairs:

1. stack the two heads' logits                      -> (N, 1, C, 2)          (Fig. 5, left)
2. head-wise conv, 8 kernels of size 1x2 over heads -> (N, 8, C)             (Fig. 5)
3. BatchNorm + ReLU                                 -> (N, 8, C)
4. class-wise conv, 16 kernels of size 2, applied to
   the (class i, class j) pair of every one of the 8
   maps, for every pair i < j                       -> (N, 16, 8, P)         (Fig. 6)
5. average pool, stride 2, over the 16-kernel axis  -> (N, 8, 8, P)
6. flatten                                          -> (N, 64 P)  (2880 for C = 10)
7. linear                                           -> (N, C) logits (softmax lives in the loss)

The pairs are an index gather, not a Python loop, so the merger exports to ONNX as a few ops.
"""

from __future__ import annotations

import torch
from torch import nn

HEAD_KERNELS = 8
CLASS_KERNELS = 16


def class_pairs(num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tensors (i, j) with i < j over all P = C(C-1)/2 unordered class pairs."""
    i, j = torch.triu_indices(num_classes, num_classes, offset=1)
    return i, j


def merger_features(num_classes: int) -> int:
    """Width of the flattened feature vector: 8 * 8 * C(C-1)/2 (2880 for 10 classes)."""
    return HEAD_KERNELS * (CLASS_KERNELS // 2) * num_classes * (num_classes - 1) // 2


class Merger(nn.Module):
    """Combine (main, second) logits, each (N, C), into merged logits (N, C)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"the merger needs at least 2 classes, got {num_classes}")
        self.num_classes = num_classes
        self.head_conv = nn.Conv2d(1, HEAD_KERNELS, kernel_size=(1, 2))
        self.bn = nn.BatchNorm1d(HEAD_KERNELS)
        self.relu = nn.ReLU()
        self.class_conv = nn.Conv2d(1, CLASS_KERNELS, kernel_size=(1, 2))
        self.pool = nn.AvgPool1d(kernel_size=2, stride=2)
        i, j = class_pairs(num_classes)
        self.register_buffer("pair_i", i, persistent=False)
        self.register_buffer("pair_j", j, persistent=False)
        self.fc = nn.Linear(merger_features(num_classes), num_classes)

    def forward(self, main_logits: torch.Tensor, second_logits: torch.Tensor) -> torch.Tensor:
        """Two (N, C) logits -> (N, C) merged logits (Fig. 4-6, shapes in the comments)."""
        n, c = main_logits.shape
        x = torch.stack((main_logits, second_logits), dim=-1).unsqueeze(1)  # (N, 1, C, 2)
        h = self.head_conv(x).squeeze(-1)  # (N, 8, C)
        h = self.relu(self.bn(h))
        pairs = torch.stack((h[:, :, self.pair_i], h[:, :, self.pair_j]), dim=-1)  # (N, 8, P, 2)
        p = pairs.shape[2]
        z = self.class_conv(pairs.reshape(n, 1, HEAD_KERNELS * p, 2))  # (N, 16, 8P, 1)
        z = z.reshape(n, CLASS_KERNELS, HEAD_KERNELS * p)  # (N, 16, 8P)
        z = self.pool(z.transpose(1, 2)).transpose(1, 2)  # (N, 8, 8P): pooled over the 16 axis
        return self.fc(z.reshape(n, -1))  # (N, 64P) -> (N, C)
