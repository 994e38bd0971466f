"""One epoch of a stage: the loader, the training pass, the validation that picks ``best``.

``train_epoch`` runs one pass of the stage's method over the training split (``training.methods``
gives the loss and the training attack); ``validate`` measures clean and PGD accuracy on the fixed
validation batch; ``selection_score`` turns those into what ``best`` maximises. Every epoch reseeds
from (seed, stage, epoch), so a resumed run replays exactly what an uninterrupted one did.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from training.attacks import accuracy, robust_accuracy
from training.datasets.splits import DataSplits
from training.distributed import DistContext
from training.methods import method_of
from training.models.dual_head import DualHeadNet, ModeView
from training.recipes import Recipe, StageSpec


def epoch_seed(seed: int, stage: int, epoch: int) -> int:
    """A seed per (run seed, stage, epoch), so a resumed run replays exactly what an uninterrupted one did."""
    return seed * 100_003 + stage * 1_009 + epoch


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype of a recipe's ``precision`` on ``device``: bf16 only for ``bf16`` on CUDA, else None."""
    return torch.bfloat16 if precision == "bf16" and device.type == "cuda" else None


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """The recipe's precision (``Recipe.precision``): bf16 autocast on CUDA when it says bf16, else fp32."""
    dtype = autocast_dtype(device, precision)
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=dtype is not None):
        yield


def epoch_loader(splits: DataSplits, recipe: Recipe, ctx: DistContext, n: int, epoch: int) -> DataLoader:
    """The training split in this epoch's order (a DistributedSampler shard per rank under torchrun)."""
    if ctx.enabled:
        sampler = DistributedSampler(splits.train, ctx.world_size, ctx.rank, shuffle=True, seed=recipe.seed)
        sampler.set_epoch(epoch_seed(recipe.seed, n, epoch))
        batch = max(recipe.data.batch_size // ctx.world_size, 1)
    else:
        gen = torch.Generator().manual_seed(epoch_seed(recipe.seed, n, epoch))
        sampler, batch = RandomSampler(splits.train, generator=gen), recipe.data.batch_size
    return DataLoader(
        splits.train,
        batch_size=batch,
        sampler=sampler,
        num_workers=recipe.data.workers,
        pin_memory=ctx.device.type == "cuda",
    )


@dataclass(frozen=True)
class EpochResult:
    """What one epoch measured: mean loss, throughput over all ranks, wall time."""

    loss: float
    images_per_s: float
    seconds: float


def train_epoch(
    net: DualHeadNet,
    model: nn.Module,
    loader: DataLoader,
    opt: torch.optim.Optimizer,
    spec: StageSpec,
    mode: str,
    ctx: DistContext,
    desc: str,
    precision: str = "fp32",
) -> EpochResult:
    """One pass over ``loader``; ``model`` is ``net`` or its DDP wrapper (the loss runs through it).

    ``precision`` is the recipe's (fp32, or bf16 autocast on CUDA)."""
    method = method_of(spec.method)
    view, attack_view = ModeView(model, mode), ModeView(net, mode)
    net.train()
    total, seen, start = 0.0, 0, time.perf_counter()
    bar = tqdm(loader, desc=desc, disable=True if not ctx.is_main else None, leave=False, dynamic_ncols=True)
    for x, y in bar:
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        if ctx.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(ctx.device, precision):
            loss = method.loss(view, x, y, spec.beta, spec.attack, attack_model=attack_view)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
        seen += len(y)
        bar.set_postfix(
            loss=f"{total / seen:.4f}", img_s=f"{seen * ctx.world_size / (time.perf_counter() - start):.0f}"
        )
    seconds = time.perf_counter() - start
    return EpochResult(total / max(seen, 1), seen * ctx.world_size / max(seconds, 1e-9), seconds)


def validate(
    net: DualHeadNet, mode: str, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, device: torch.device
) -> tuple[float, float]:
    """(clean, PGD) accuracy of ``mode`` on the validation batch (N, C, H, W), with a fixed attack seed."""
    view = ModeView(net, mode)
    torch.manual_seed(recipe.seed)
    with autocast(device, recipe.precision):
        return accuracy(view, x, y), robust_accuracy(view, x, y, recipe.validation.attack)


def selection_score(select: str, epoch: int, clean: float, robust: float) -> float:
    """What ``best`` maximises: validation PGD accuracy, clean accuracy, or the epoch itself (``last``).

    The first epoch reaching the maximum wins (a strict ``>``), as in Rice et al.'s early stopping.
    """
    return {"robust": robust, "clean": clean, "last": float(epoch)}[select]
