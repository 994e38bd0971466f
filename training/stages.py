"""The three DH-AT stages (§III-C) and the epoch loop they share.

======  ===============  =====================================  ==========================
stage   forward mode     trains                                 frozen (no grad, BN fixed)
======  ===============  =====================================  ==========================
1       ``main``         trunk + main head (or ``init`` loads)  second head, merger
2       ``second``       second head (fresh or copy of main)    trunk, main head, merger
3       ``merged``       merger (TRADES, 1/lambda = 2)          trunk, both heads
======  ===============  =====================================  ==========================

Each stage writes ``RUN/stageN/{best,last}/`` (checkpoints, atomically; layout in ``training.run_dir``)
and appends to ``RUN/metrics.jsonl``. ``last`` carries the SGD momentum, so ``--resume`` continues from the last
complete epoch; every epoch reseeds from (seed, stage, epoch), so a resumed run ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from dhat_serve.contract import MAIN, MERGED, SECOND, Mode
from training.attacks import accuracy, robust_accuracy
from training.checkpoints import (CheckpointMeta, is_checkpoint, load_checkpoint, load_momentum, load_single_head,
                                  momentum_state, read_meta, save_checkpoint)
from training.data import DataSplits, first_n
from training.distributed import DistContext
from training.freezing import copy_main_to_second, freeze, trainable_parameters
from training.methods import method_of
from training.models.dual_head import PARTS, DualHeadNet, ModeView
from training.models.registry import ModelConfig, create_model
from training.models.wideresnet import init_wrn_weights
from training.recipes import Recipe, StageSpec
from training.run_dir import BEST, LAST, RunDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One row of the stage table above: what a stage runs, trains and hands on.

    ``mode`` is the forward the stage trains and validates; ``trains`` the parts left unfrozen;
    ``produces`` the part marked trained when it ends. What picks ``best`` is the recipe's
    ``stageN.select`` (robust, clean or last), because it depends on the method, not on the stage.
    """

    number: int
    mode: Mode
    trains: tuple[str, ...]
    produces: str


STAGES: tuple[Stage, ...] = (
    Stage(1, MAIN, ("trunk", "main_head"), "main_head"),
    Stage(2, SECOND, ("second_head",), "second_head"),
    Stage(3, MERGED, ("merger",), "merger"),
)


def stage_of(n: int) -> Stage:
    """The stage numbered ``n`` (1, 2 or 3), or a StageError naming the valid numbers."""
    for stage in STAGES:
        if stage.number == n:
            return stage
    raise StageError(f"--stage must be 1, 2 or 3, got {n}")


class StageError(RuntimeError):
    """A stage that cannot start; raised before any training, with what to run instead."""


def require_previous(run_dir: Path, n: int, spec: StageSpec) -> Path:
    """The previous stage's checkpoint this stage starts from, or a StageError saying what to run."""
    prev = RunDir(run_dir).checkpoint(n - 1, spec.start_from)
    if not is_checkpoint(prev):
        raise StageError(
            f"stage {n} needs the stage-{n - 1} checkpoint {prev}, which does not exist; "
            f"run `dhat train RECIPE --out {run_dir} --stage {n - 1}` first (or the whole recipe without --stage)"
        )
    return prev


def model_config(recipe: Recipe, splits: DataSplits) -> ModelConfig:
    """The network a recipe asks for, sized to its data (classes, channels, image size, mean / std)."""
    m = recipe.model
    return ModelConfig(
        arch=m.arch, layout=m.layout, second_arch=m.second_arch, num_classes=splits.num_classes,
        in_channels=splits.in_channels, input_size=splits.image_size,
        mean=splits.mean if m.normalize else (), std=splits.std if m.normalize else (),
        class_names=splits.class_names,
    )


def epoch_seed(seed: int, stage: int, epoch: int) -> int:
    """A seed per (run seed, stage, epoch), so a resumed run replays exactly what an uninterrupted one did."""
    return seed * 100_003 + stage * 1_009 + epoch


def reinit(module: nn.Module) -> None:
    """Fresh weights for every submodule of ``module`` (a new second head starts from scratch)."""
    for m in module.modules():
        if hasattr(m, "reset_parameters") and m is not module:
            m.reset_parameters()
    init_wrn_weights(module)


def prepare_net(recipe: Recipe, n: int, run_dir: Path, splits: DataSplits) -> tuple[DualHeadNet, ModelConfig, dict]:
    """The network at the start of stage ``n``, with the right parts frozen."""
    spec = recipe.stage(n)
    if n == 1:
        cfg = model_config(recipe, splits)
        torch.manual_seed(recipe.seed)
        net = create_model(cfg)
        trained = {"main_head": False, "second_head": False, "merger": False}
        if spec.init:
            load_single_head(net, spec.init)
            trained["main_head"] = True
    else:
        net, cfg, doc = load_checkpoint(require_previous(run_dir, n, spec))
        trained = dict(doc["trained"])
        if n == 2:
            torch.manual_seed(epoch_seed(recipe.seed, 2, -1))
            reinit(net.second_head)
            if spec.copy_main:
                copy_main_to_second(net)
    if not isinstance(net, DualHeadNet):
        raise StageError(f"recipe layout {recipe.model.layout!r} is not a dual-head layout")
    freeze(net, [p for p in PARTS if p not in stage_of(n).trains])
    return net, cfg, trained


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """bf16 autocast on CUDA, nothing on CPU."""
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        yield


def _loader(splits: DataSplits, recipe: Recipe, ctx: DistContext, n: int, epoch: int) -> DataLoader:
    if ctx.enabled:
        sampler = DistributedSampler(splits.train, ctx.world_size, ctx.rank, shuffle=True, seed=recipe.seed)
        sampler.set_epoch(epoch_seed(recipe.seed, n, epoch))
        batch = max(recipe.data.batch_size // ctx.world_size, 1)
    else:
        gen = torch.Generator().manual_seed(epoch_seed(recipe.seed, n, epoch))
        sampler, batch = RandomSampler(splits.train, generator=gen), recipe.data.batch_size
    return DataLoader(splits.train, batch_size=batch, sampler=sampler, num_workers=recipe.data.workers,
                      pin_memory=ctx.device.type == "cuda")


@dataclass(frozen=True)
class EpochResult:
    """What one epoch measured: mean loss, throughput over all ranks, wall time."""

    loss: float
    images_per_s: float
    seconds: float


def train_epoch(net: DualHeadNet, model: nn.Module, loader: DataLoader, opt: torch.optim.Optimizer, spec: StageSpec,
                mode: str, ctx: DistContext, desc: str) -> EpochResult:
    """One pass over ``loader``; ``model`` is ``net`` or its DDP wrapper (the loss runs through it)."""
    method = method_of(spec.method)
    view, attack_view = ModeView(model, mode), ModeView(net, mode)
    net.train()
    total, seen, start = 0.0, 0, time.perf_counter()
    bar = tqdm(loader, desc=desc, disable=True if not ctx.is_main else None, leave=False, dynamic_ncols=True)
    for x, y in bar:
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        if ctx.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(ctx.device):
            loss = method.loss(view, x, y, spec.beta, spec.attack, attack_model=attack_view)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
        seen += len(y)
        bar.set_postfix(loss=f"{total / seen:.4f}", img_s=f"{seen * ctx.world_size / (time.perf_counter() - start):.0f}")
    seconds = time.perf_counter() - start
    return EpochResult(total / max(seen, 1), seen * ctx.world_size / max(seconds, 1e-9), seconds)


def validate(net: DualHeadNet, mode: str, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, device: torch.device) -> tuple[float, float]:
    """(clean, PGD) accuracy of ``mode`` on the validation batch (N, C, H, W), with a fixed attack seed."""
    view = ModeView(net, mode)
    torch.manual_seed(recipe.seed)
    with autocast(device):
        return accuracy(view, x, y), robust_accuracy(view, x, y, recipe.validation.attack)


def selection_score(select: str, epoch: int, clean: float, robust: float) -> float:
    """What ``best`` maximises: validation PGD accuracy, clean accuracy, or the epoch itself (``last``).

    The first epoch reaching the maximum wins (a strict ``>``), as in Rice et al.'s early stopping.
    """
    return {"robust": robust, "clean": clean, "last": float(epoch)}[select]


def stage_meta(recipe: Recipe, stage: int, *, epoch: int, complete: bool, best: float, clean: float,
               robust: float) -> CheckpointMeta:
    """The meta every training checkpoint of ``stage`` carries, from one place (same fields at every epoch)."""
    spec = recipe.stage(stage)
    return CheckpointMeta(stage=stage, epoch=epoch, complete=complete, select=spec.select, best_score=best,
                          val_clean=clean, val_robust=robust, recipe=recipe.name, seed=recipe.seed,
                          eps=spec.attack.eps, validation_eps=recipe.validation.attack.eps)


def _resume_point(net: DualHeadNet, opt: torch.optim.Optimizer, last: Path, resume: bool, ctx: DistContext) -> tuple[int, float]:
    """(first epoch to run, best selection score so far): (0, -1) for a fresh stage, else from ``last``."""
    if not is_checkpoint(last):
        return 0, -1.0
    if not resume:
        raise StageError(f"{last} already exists; pass --resume to continue this run, or choose a new --out")
    done, _, _ = load_checkpoint(last, ctx.device)
    net.load_state_dict(done.state_dict())
    load_momentum(net, opt, last)
    meta = read_meta(last)
    return meta.epoch + 1, meta.best_score


def run_stage(recipe: Recipe, n: int, run_dir: Path, splits: DataSplits, ctx: DistContext, resume: bool) -> None:
    """Train stage ``n`` to the end of its schedule, keeping ``best`` (by ``spec.select``) and ``last``."""
    stage, spec, run = stage_of(n), recipe.stage(n), RunDir(run_dir)
    net, cfg, trained = prepare_net(recipe, n, run_dir, splits)
    net.to(ctx.device)
    if ctx.device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(trainable_parameters(net), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    last = run.checkpoint(n, LAST)
    start, best = _resume_point(net, opt, last, resume, ctx)
    if start:
        log.info("stage %d: resuming after epoch %d (best %s score %.4g)", n, start, spec.select, best)
    if ctx.is_main:
        run.trim_metrics(n, start)
    model: nn.Module = DistributedDataParallel(net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None) \
        if ctx.enabled else net
    x_val, y_val = (t.to(ctx.device) for t in first_n(splits.val, recipe.validation.n))
    trained_now = {**trained, stage.produces: True}
    if spec.epochs == 0:  # e.g. a pre-trained main head used as is
        if ctx.is_main:
            clean, robust = validate(net, stage.mode, x_val, y_val, recipe, ctx.device)
            meta = stage_meta(recipe, n, epoch=-1, complete=True, best=selection_score(spec.select, -1, clean, robust),
                                   clean=clean, robust=robust)
            for kind in (BEST, LAST):
                save_checkpoint(run.checkpoint(n, kind), net, cfg, trained_now if spec.init or n > 1 else trained, meta)
        ctx.barrier()
        return
    for epoch in range(start, spec.epochs):
        torch.manual_seed(epoch_seed(recipe.seed, n, epoch) + ctx.rank)
        lr = spec.lr_at(epoch + 1)  # ``epoch`` indexes from 0; milestones count epochs from 1
        for group in opt.param_groups:
            group["lr"] = lr
        desc = f"stage {n} epoch {epoch + 1}/{spec.epochs}"
        result = train_epoch(net, model, _loader(splits, recipe, ctx, n, epoch), opt, spec, stage.mode, ctx, desc)
        if ctx.is_main:
            clean, robust = validate(net, stage.mode, x_val, y_val, recipe, ctx.device)
            score = selection_score(spec.select, epoch, clean, robust)
            is_best = score > best
            best = max(best, score)
            run.append_metrics({"stage": n, "mode": stage.mode, "epoch": epoch, "lr": lr, "loss": result.loss,
                                      "val_clean": clean, "val_robust": robust, "best": is_best,
                                      "seconds": round(result.seconds, 3), "images_per_s": round(result.images_per_s, 1)})
            meta = stage_meta(recipe, n, epoch=epoch, complete=epoch == spec.epochs - 1, best=best, clean=clean,
                                   robust=robust)
            if is_best:
                save_checkpoint(run.checkpoint(n, BEST), net, cfg, trained_now, meta)
            save_checkpoint(last, net, cfg, trained_now, meta, extra_tensors=momentum_state(net, opt))
            log.info("%s: lr %.4g loss %.4f | val clean %.2f%% PGD %.2f%%%s | %.1fs, %.0f img/s", desc, lr, result.loss,
                     100 * clean, 100 * robust, " (best)" if is_best else "", result.seconds, result.images_per_s)
        ctx.barrier()
