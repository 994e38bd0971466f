"""CIFAR ResNet-18/34 (3x3 stem, no max-pool, post-activation basic blocks).

Key names follow the robustness-research layout (``conv1, bn1, layer1..4, linear``) used by TRADES,
MART and AutoAttack's examples. Split at the paper's attaching point (§III-B, Fig. 3):
``ResNetTrunk`` = stem + layer1, ``ResNetHead`` = layer2-4 + pool + linear. The asymmetric DH-AT net
uses a ResNet-34 trunk (3 blocks in layer1) and a "revised ResNet-18" second head (layers 2-4, two
blocks each).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN (+ shortcut) then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, planes, H / stride, W / stride), post-activation."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def make_layer(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` basic blocks, the first with ``stride``: one residual group as an ``nn.Sequential``."""
    strides = [stride] + [1] * (blocks - 1)
    layers = []
    for s in strides:
        layers.append(BasicBlock(in_planes, planes, s))
        in_planes = planes
    return nn.Sequential(*layers)


class ResNetTrunk(nn.Module):
    """conv1 + bn1 + layer1: (N, C_in, H, W) -> (N, w, H, W)."""

    def __init__(self, layer1_blocks: int, in_channels: int, width: int = 64) -> None:
        super().__init__()
        self.out_channels = width
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = make_layer(width, width, layer1_blocks, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, width, H, W): 3x3 stem + the first residual group (the attaching point)."""
        return self.layer1(F.relu(self.bn1(self.conv1(x))))


class ResNetHead(nn.Module):
    """layer2-4 + global average pool + linear: (N, w, H, W) -> (N, num_classes)."""

    def __init__(self, blocks: Sequence[int], num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.in_channels = width
        self.layer2 = make_layer(width, 2 * width, blocks[0], 2)
        self.layer3 = make_layer(2 * width, 4 * width, blocks[1], 2)
        self.layer4 = make_layer(4 * width, 8 * width, blocks[2], 2)
        self.linear = nn.Linear(8 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, width, H, W) trunk features -> (N, classes) logits."""
        out = self.layer4(self.layer3(self.layer2(x)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))
