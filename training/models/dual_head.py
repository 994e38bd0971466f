"""The dual-head network (§III-B): shared trunk, main head, second head, merger.

``forward(x, mode)`` computes only what the mode needs: ``main`` and ``second`` never run the other
head; ``merged`` runs the trunk once and both heads on its output. ``forward_all`` returns the three
logits of one pass (what ``merged.onnx`` exposes). Frozen parts stay in eval mode through ``train()``
so their BatchNorm statistics never move (§III-C: "freeze the parameters ... before the attaching
point").
"""

from __future__ import annotations

import torch
from torch import nn

from dhat_serve.contract import MAIN, MODES, SECOND, parse_mode

PARTS = ("trunk", "main_head", "second_head", "merger")


class SingleHeadNet(nn.Module):
    """A plain classifier split at the attaching point: (N, C, H, W) in [0, 1] -> (N, classes)."""

    def __init__(self, normalize: nn.Module, trunk: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.normalize = normalize
        self.trunk = trunk
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, classes)."""
        return self.head(self.trunk(self.normalize(x)))


class DualHeadNet(nn.Module):
    """Trunk + two heads + merger; images (N, C, H, W) in [0, 1] -> logits (N, classes)."""

    def __init__(
        self, normalize: nn.Module, trunk: nn.Module, main_head: nn.Module, second_head: nn.Module, merger: nn.Module
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.trunk = trunk
        self.main_head = main_head
        self.second_head = second_head
        self.merger = merger
        self.frozen_parts: tuple[str, ...] = ()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output at the attaching point, e.g. (N, 160, 32, 32) for WRN-34-10 on CIFAR."""
        return self.trunk(self.normalize(x))

    def forward(self, x: torch.Tensor, mode: str = MAIN) -> torch.Tensor:
        """(N, C, H, W) images in [0, 1] -> (N, classes) logits of ``mode``, running only what it needs."""
        if mode not in MODES:
            parse_mode(mode)  # raises with the list of valid modes
        z = self.features(x)
        if mode == MAIN:
            return self.main_head(z)
        if mode == SECOND:
            return self.second_head(z)
        return self.merger(self.main_head(z), self.second_head(z))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(merged, main, second) logits from one trunk pass, each (N, classes)."""
        z = self.features(x)
        main, second = self.main_head(z), self.second_head(z)
        return self.merger(main, second), main, second

    def train(self, mode: bool = True) -> DualHeadNet:
        """``nn.Module.train``, but frozen parts stay in eval mode so their BatchNorm statistics never move."""
        super().train(mode)
        for name in self.frozen_parts:
            getattr(self, name).eval()
        return self


class ModeView(nn.Module):
    """A DualHeadNet fixed to one mode: ``forward(x)`` -> logits. What attacks and the exporter see."""

    def __init__(self, net: DualHeadNet, mode: str) -> None:
        super().__init__()
        self.net = net
        self.mode = parse_mode(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, classes) logits of the fixed mode."""
        return self.net(x, self.mode)


class AllOutputs(nn.Module):
    """``forward(x)`` -> (merged, main, second) logits: the graph behind ``merged.onnx``."""

    def __init__(self, net: DualHeadNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, C, H, W) -> three (N, classes) logits in ``GRAPH_OUTPUTS[MERGED]`` order."""
        return self.net.forward_all(x)
