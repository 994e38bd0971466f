"""Freezing parts of a DualHeadNet and copying the main head into the second head.

Freezing means both: no gradients (``requires_grad=False``) **and** BatchNorm statistics that do not
move (the part stays in eval mode even when the net is put in train mode). The authors' code froze
only the first, so frozen heads drifted; ``DualHeadNet.train`` honours ``frozen_parts``.
"""

from __future__ import annotations

from collections.abc import Iterable

from training.models.dual_head import PARTS, DualHeadNet


def freeze(net: DualHeadNet, parts: Iterable[str]) -> None:
    """Freeze exactly ``parts`` (names from PARTS) and unfreeze the others."""
    parts = tuple(parts)
    for name in parts:
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; valid parts: {', '.join(PARTS)}")
    for name in PARTS:
        for p in getattr(net, name).parameters():
            p.requires_grad_(name not in parts)
    net.frozen_parts = parts
    net.train(net.training)


def trainable_parameters(net: DualHeadNet) -> list:
    """Parameters that still require gradients: what a stage's optimiser gets."""
    return [p for p in net.parameters() if p.requires_grad]


def copy_main_to_second(net: DualHeadNet) -> None:
    """Best-vs-last variant: the second head starts as an exact copy of the main head."""
    main, second = net.main_head.state_dict(), net.second_head.state_dict()
    if {k: v.shape for k, v in main.items()} != {k: v.shape for k, v in second.items()}:
        raise ValueError("copy_main needs a symmetric network: the two heads have different architectures")
    net.second_head.load_state_dict(main)
