"""WideResNet-d-k in the TRADES / MART variant (pre-activation blocks, no dropout).

Key names follow the TRADES code (``conv1``, ``block1.layer.0.bn1``, ..., ``bn1``, ``fc``) so that its
published checkpoints load. The network is split at the paper's attaching point (§III-B, Fig. 2):
``WRNTrunk`` = conv1 + group 1 ("Block 1"), ``WRNHead`` = groups 2-3 + BN/ReLU/pool + FC.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 (+ 1x1 shortcut if shapes change)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == out_planes and stride == 1
        self.convShortcut = (
            None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, H / stride, W / stride), pre-activation."""
        out = self.relu1(self.bn1(x))
        shortcut = x if self.convShortcut is None else self.convShortcut(out)
        out = self.conv2(self.relu2(self.bn2(self.conv1(out))))
        return shortcut + out


class NetworkBlock(nn.Module):
    """One residual group of ``n`` blocks, kept as ``.layer`` for TRADES key compatibility."""

    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[BasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1) for i in range(n)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the group's blocks in order; shapes as ``BasicBlock``."""
        return self.layer(x)


def wrn_widths(widen: int, stem: int = 16) -> tuple[int, int, int, int]:
    """Channel widths (stem, group1, group2, group3): (16, 16k, 32k, 64k) for the standard WRN."""
    return stem, stem * widen, 2 * stem * widen, 4 * stem * widen


def blocks_per_group(depth: int) -> int:
    """Blocks in each of a WRN-d-k's three groups: (d - 4) / 6, e.g. 5 for WRN-34-10."""
    if (depth - 4) % 6 != 0:
        raise ValueError(f"WideResNet depth must be 6n+4 (e.g. 16, 28, 34), got {depth}")
    return (depth - 4) // 6


class WRNTrunk(nn.Module):
    """conv1 + group 1: (N, C_in, H, W) -> (N, 16k, H, W)."""

    def __init__(self, depth: int, widen: int, in_channels: int, stem: int = 16) -> None:
        super().__init__()
        w = wrn_widths(widen, stem)
        self.out_channels = w[1]
        self.conv1 = nn.Conv2d(in_channels, w[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(blocks_per_group(depth), w[0], w[1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 16k, H, W): stem conv + group 1 ("Block 1", the attaching point)."""
        return self.block1(self.conv1(x))


class WRNHead(nn.Module):
    """Groups 2-3 + BN/ReLU + global average pool + FC: (N, 16k, H, W) -> (N, num_classes)."""

    def __init__(self, depth: int, widen: int, num_classes: int, stem: int = 16) -> None:
        super().__init__()
        w = wrn_widths(widen, stem)
        self.in_channels = w[1]
        n = blocks_per_group(depth)
        self.block2 = NetworkBlock(n, w[1], w[2], 2)
        self.block3 = NetworkBlock(n, w[2], w[3], 2)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(w[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 16k, H, W) trunk features -> (N, classes): groups 2-3, BN/ReLU, pool, FC."""
        out = self.relu(self.bn1(self.block3(self.block2(x))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def init_wrn_weights(module: nn.Module) -> None:
    """He-normal convolutions, unit BN, zero biases (the TRADES initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
