"""The epoch loop the three DH-AT stages (§III-C, table in ``training.stage_table``) share.

Each stage writes ``RUN/stageN/{best,last}/`` (checkpoints, atomically; layout in ``training.run_dir``)
and appends to ``RUN/metrics.jsonl``. ``last`` carries the SGD momentum, so ``--resume`` continues from the last
complete epoch; every epoch reseeds from (seed, stage, epoch), so a resumed run ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from training.checkpoints import (
    CheckpointMeta,
    is_checkpoint,
    load_checkpoint,
    load_momentum,
    load_single_head,
    momentum_state,
    read_meta,
    save_checkpoint,
)
from training.datasets.splits import DataSplits, first_n
from training.distributed import DistContext
from training.epoch import EpochResult, epoch_loader, epoch_seed, selection_score, train_epoch, validate
from training.freezing import copy_main_to_second, freeze, trainable_parameters
from training.models.dual_head import PARTS, DualHeadNet
from training.models.registry import ModelConfig, create_model
from training.models.wideresnet import init_wrn_weights
from training.recipes import Recipe, StageSpec
from training.run_dir import BEST, LAST, RunDir
from training.stage_table import Stage, StageError, stage_of

log = logging.getLogger(__name__)


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
        arch=m.arch,
        layout=m.layout,
        second_arch=m.second_arch,
        num_classes=splits.num_classes,
        in_channels=splits.in_channels,
        input_size=splits.image_size,
        mean=splits.mean if m.normalize else (),
        std=splits.std if m.normalize else (),
        class_names=splits.class_names,
    )


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


def stage_meta(
    recipe: Recipe, stage: int, *, epoch: int, complete: bool, best: float, clean: float, robust: float
) -> CheckpointMeta:
    """The meta every training checkpoint of ``stage`` carries, from one place (same fields at every epoch);
    ``epoch`` is 1-based (0: none trained)."""
    spec = recipe.stage(stage)
    return CheckpointMeta(
        stage=stage,
        epoch=epoch,
        epoch_base=1,
        complete=complete,
        select=spec.select,
        best_score=best,
        val_clean=clean,
        val_robust=robust,
        recipe=recipe.name,
        seed=recipe.seed,
        eps=spec.attack.eps,
        validation_eps=recipe.validation.attack.eps,
    )


def _resume_point(
    net: DualHeadNet, opt: torch.optim.Optimizer, last: Path, resume: bool, ctx: DistContext
) -> tuple[int, float]:
    """(first epoch to run, best selection score so far): (0, -1) for a fresh stage, else from ``last``."""
    if not is_checkpoint(last):
        return 0, -1.0
    if not resume:
        raise StageError(f"{last} already exists; pass --resume to continue this run, or choose a new --out")
    done, _, _ = load_checkpoint(last, ctx.device)
    net.load_state_dict(done.state_dict())
    load_momentum(net, opt, last)
    meta = read_meta(last)
    return meta.epochs_done, meta.best_score


@dataclass
class StageRun:
    """Everything one stage's epochs share: what the recipe asks, the network and its optimiser, where it writes."""

    recipe: Recipe
    stage: Stage
    spec: StageSpec
    run: RunDir
    net: DualHeadNet
    model: nn.Module  # ``net`` or its DDP wrapper: the training forward runs through it
    cfg: ModelConfig
    trained: dict[str, bool]
    opt: torch.optim.Optimizer
    ctx: DistContext
    x_val: torch.Tensor
    y_val: torch.Tensor
    start_epoch: int = 0  # 1-based epoch of the checkpoint this stage starts from (0 for stage 1)

    def save(self, which: str, meta: CheckpointMeta, trained: dict[str, bool] | None = None) -> None:
        """Write ``best`` or ``last`` (``last`` with the momentum ``--resume`` needs)."""
        extra = momentum_state(self.net, self.opt) if which == LAST else None
        save_checkpoint(
            self.run.checkpoint(self.stage.number, which),
            self.net,
            self.cfg,
            trained if trained is not None else {**self.trained, self.stage.produces: True},
            meta,
            extra_tensors=extra,
        )


def start_stage(recipe: Recipe, n: int, run_dir: Path, splits: DataSplits, ctx: DistContext) -> StageRun:
    """The network on its device with the right parts frozen, its SGD optimiser and the validation batch."""
    spec = recipe.stage(n)
    net, cfg, trained = prepare_net(recipe, n, run_dir, splits)
    net.to(ctx.device)
    if ctx.device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(trainable_parameters(net), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    model: nn.Module = (
        DistributedDataParallel(net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        if ctx.enabled
        else net
    )
    x_val, y_val = (t.to(ctx.device) for t in first_n(splits.val, recipe.validation.n))
    start = read_meta(require_previous(run_dir, n, spec)).epochs_done if n > 1 else 0
    return StageRun(recipe, stage_of(n), spec, RunDir(run_dir), net, model, cfg, trained, opt, ctx, x_val, y_val, start)


def keep_as_is(sr: StageRun) -> None:
    """A stage of 0 epochs (e.g. a pre-trained main head used as is): validate once, save it as best and last."""
    if sr.ctx.is_main:
        clean, robust = validate(sr.net, sr.stage.mode, sr.x_val, sr.y_val, sr.recipe, sr.ctx.device)
        score = selection_score(sr.spec.select, 0, clean, robust)
        meta = stage_meta(sr.recipe, sr.stage.number, epoch=0, complete=True, best=score, clean=clean, robust=robust)
        # a head loaded by --init counts as trained; a 0-epoch stage without one trained nothing (a baseline's
        # stages 2 and 3: its second head and merger stay untrained, so the export is main.onnx alone)
        trained = None if sr.spec.init else sr.trained
        for which in (BEST, LAST):
            sr.save(which, meta, trained)
    sr.ctx.barrier()


def end_epoch(sr: StageRun, epoch: int, lr: float, result: EpochResult, best: float) -> float:
    """Rank 0 after the ``epoch``-th epoch (1-based, as written everywhere): validate, log the metrics row,
    save ``last`` (and ``best`` if it is); the new best."""
    clean, robust = validate(sr.net, sr.stage.mode, sr.x_val, sr.y_val, sr.recipe, sr.ctx.device)
    score = selection_score(sr.spec.select, epoch, clean, robust)
    is_best, best = score > best, max(best, score)
    n = sr.stage.number
    sr.run.append_metrics(
        {
            "stage": n,
            "mode": sr.stage.mode,
            "epoch": epoch,
            "lr": lr,
            "loss": result.loss,
            "val_clean": clean,
            "val_robust": robust,
            "best": is_best,
            "seconds": round(result.seconds, 3),
            "images_per_s": round(result.images_per_s, 1),
            **({"schedule_epoch": sr.start_epoch + epoch} if sr.spec.continue_schedule else {}),
        }
    )
    meta = stage_meta(
        sr.recipe, n, epoch=epoch, complete=epoch == sr.spec.epochs, best=best, clean=clean, robust=robust
    )
    if is_best:
        sr.save(BEST, meta)
    if epoch in sr.spec.keep_epochs:
        save_checkpoint(sr.run.kept(n, epoch), sr.net, sr.cfg, {**sr.trained, sr.stage.produces: True}, meta)
    sr.save(LAST, meta)
    log.info(
        "stage %d epoch %d/%d: lr %.4g loss %.4f | val clean %.2f%% PGD %.2f%%%s | %.1fs, %.0f img/s",
        n,
        epoch,
        sr.spec.epochs,
        lr,
        result.loss,
        100 * clean,
        100 * robust,
        " (best)" if is_best else "",
        result.seconds,
        result.images_per_s,
    )
    return best


def run_stage(recipe: Recipe, n: int, run_dir: Path, splits: DataSplits, ctx: DistContext, resume: bool) -> None:
    """Train stage ``n`` to the end of its schedule, keeping ``best`` (by ``spec.select``) and ``last``."""
    sr = start_stage(recipe, n, run_dir, splits, ctx)
    start, best = _resume_point(sr.net, sr.opt, sr.run.checkpoint(n, LAST), resume, ctx)
    if start:
        log.info("stage %d: resuming after epoch %d (best %s score %.4g)", n, start, sr.spec.select, best)
    if ctx.is_main:
        sr.run.trim_metrics(n, start)
    if sr.spec.epochs == 0:
        keep_as_is(sr)
        return
    for epoch in range(start, sr.spec.epochs):
        torch.manual_seed(epoch_seed(recipe.seed, n, epoch) + ctx.rank)
        lr = recipe.lr_at(n, epoch + 1, sr.start_epoch)  # ``epoch`` indexes from 0; milestones count from 1
        for group in sr.opt.param_groups:
            group["lr"] = lr
        loader = epoch_loader(splits, recipe, ctx, n, epoch)
        result = train_epoch(
            sr.net,
            sr.model,
            loader,
            sr.opt,
            sr.spec,
            sr.stage.mode,
            ctx,
            f"stage {n} epoch {epoch + 1}/{sr.spec.epochs}",
            recipe.precision,
        )
        if ctx.is_main:
            best = end_epoch(sr, epoch + 1, lr, result, best)
        ctx.barrier()
