"""torchrun / DDP plumbing: one process per device, only rank 0 writes.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group starts with NCCL on CUDA and gloo on CPU;
otherwise everything here is a no-op, so the same code trains on one CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's place in a torchrun job (rank, world size, device); world size 1 without torchrun."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, metrics and plots."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether more than one process trains (DDP on)."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (no-op alone), so no rank reads a checkpoint before rank 0 wrote it."""
        if self.enabled:
            dist.barrier()


def setup(device: str | None = None) -> DistContext:
    """Start the process group if launched by torchrun; pick the device (CUDA if visible, else CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local)  # plain "cuda" (--device cuda): each torchrun rank takes its own GPU
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world, local, dev)


def teardown(ctx: DistContext) -> None:
    """End the process group if ``setup`` started one."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
