"""The three DH-AT stages (§III-C) and the epoch loop they share.

======  ===============  =====================================  ==========================
stage   forward mode     trains                                 frozen (no grad, BN fixed)
======  ===============  =====================================  ==========================
1       ``main``         trunk + main head (or ``init`` loads)  second head, merger
2       ``second``       second head (fresh or copy of main)    trunk, main head, merger
3       ``merged``       merger (TRADES, 1/lambda = 2)          trunk, both heads
======  ===============  =====================================  ==========================

Each stage writes ``RUN/stageN/{best,last}/`` (checkpoints, atomically) and appends to
``RUN/metrics.jsonl``. ``last`` carries the SGD momentum, so ``--resume`` continues from the last
complete epoch; every epoch reseeds from (seed, stage, epoch), so a resumed run ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
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

from training.attacks import PGDConfig, accuracy, robust_accuracy
from training.checkpoints import load_checkpoint, load_single_head, read_checkpoint_config, save_checkpoint
from training.data import DataSplits, first_n
from training.distributed import DistContext
from training.freezing import copy_main_to_second, freeze, trainable_parameters
from training.losses import method_loss, training_attack
from training.models.dual_head import PARTS, DualHeadNet, ModeView
from training.models.registry import ModelConfig, create_model
from training.models.wideresnet import init_wrn_weights
from training.recipes import Recipe, StageSpec

log = logging.getLogger(__name__)

STAGE_MODE = {1: "main", 2: "second", 3: "merged"}
STAGE_TRAINS = {1: ("trunk", "main_head"), 2: ("second_head",), 3: ("merger",)}
STAGE_PRODUCES = {1: "main_head", 2: "second_head", 3: "merger"}
METRICS_FILE = "metrics.jsonl"


class StageError(RuntimeError):
    """A stage that cannot start; raised before any training, with what to run instead."""


def stage_dir(run_dir: Path, n: int) -> Path:
    return Path(run_dir) / f"stage{n}"


def stage_complete(run_dir: Path, n: int) -> bool:
    last = stage_dir(run_dir, n) / "last"
    return (last / "config.json").is_file() and bool(read_checkpoint_config(last)["meta"].get("complete"))


def final_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a run hands to export: the best stage-3 checkpoint."""
    return stage_dir(run_dir, 3) / "best"


def require_previous(run_dir: Path, n: int, spec: StageSpec) -> Path:
    """The previous stage's checkpoint this stage starts from, or a StageError saying what to run."""
    prev = stage_dir(run_dir, n - 1) / spec.start_from
    if not (prev / "config.json").is_file():
        raise StageError(
            f"stage {n} needs the stage-{n - 1} checkpoint {prev}, which does not exist; "
            f"run `dhat train RECIPE --out {run_dir} --stage {n - 1}` first (or the whole recipe without --stage)"
        )
    return prev


def model_config(recipe: Recipe, splits: DataSplits) -> ModelConfig:
    m = recipe.model
    return ModelConfig(
        arch=m.arch, layout=m.layout, second_arch=m.second_arch, num_classes=splits.num_classes,
        in_channels=splits.in_channels, input_size=splits.image_size,
        mean=splits.mean if m.normalize else (), std=splits.std if m.normalize else (),
        class_names=splits.class_names,
    )


def epoch_seed(seed: int, stage: int, epoch: int) -> int:
    return seed * 100_003 + stage * 1_009 + epoch


def reinit(module: nn.Module) -> None:
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
    freeze(net, [p for p in PARTS if p not in STAGE_TRAINS[n]])
    return net, cfg, trained


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """bf16 autocast on CUDA, nothing on CPU."""
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        yield


def momentum_state(net: nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    names = {p: name for name, p in net.named_parameters()}
    return {f"momentum.{names[p]}": s["momentum_buffer"] for p, s in opt.state.items() if s.get("momentum_buffer") is not None}


def load_momentum(net: nn.Module, opt: torch.optim.Optimizer, path: Path) -> None:
    from safetensors.torch import load_file

    if not path.is_file():
        return
    state = load_file(str(path))
    params = dict(net.named_parameters())
    for key, value in state.items():
        p = params[key.removeprefix("momentum.")]
        opt.state[p] = {"momentum_buffer": value.to(p.device)}


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
    loss: float
    images_per_s: float
    seconds: float


def train_epoch(net: DualHeadNet, model: nn.Module, loader: DataLoader, opt: torch.optim.Optimizer, spec: StageSpec,
                mode: str, ctx: DistContext, desc: str) -> EpochResult:
    """One pass over ``loader``; ``model`` is ``net`` or its DDP wrapper (the loss runs through it)."""
    attack = None if spec.method == "natural" else training_attack(spec.method, spec.attack.eps, spec.attack.step,
                                                                   spec.attack.steps)
    view, attack_view = ModeView(model, mode), ModeView(net, mode)
    net.train()
    total, seen, start = 0.0, 0, time.perf_counter()
    bar = tqdm(loader, desc=desc, disable=True if not ctx.is_main else None, leave=False, dynamic_ncols=True)
    for x, y in bar:
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        if ctx.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(ctx.device):
            loss = method_loss(view, x, y, spec.method, spec.beta, attack, attack_model=attack_view)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
        seen += len(y)
        bar.set_postfix(loss=f"{total / seen:.4f}", img_s=f"{seen * ctx.world_size / (time.perf_counter() - start):.0f}")
    seconds = time.perf_counter() - start
    return EpochResult(total / max(seen, 1), seen * ctx.world_size / max(seconds, 1e-9), seconds)


def validate(net: DualHeadNet, mode: str, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, device: torch.device) -> tuple[float, float]:
    """(clean, PGD) accuracy of ``mode`` on the validation batch, with a fixed attack seed."""
    a = recipe.validation.attack
    cfg = PGDConfig(a.eps, a.step, a.steps, random_start="uniform", loss="ce")
    view = ModeView(net, mode)
    torch.manual_seed(recipe.seed)
    with autocast(device):
        return accuracy(view, x, y), robust_accuracy(view, x, y, cfg)


def _trim_metrics(run_dir: Path, n: int, start: int) -> None:
    """Drop metric rows of stage ``n`` from epochs that will be re-run after a resume."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keep = [r for r in rows if not (r["stage"] == n and r["epoch"] >= start)]
    path.write_text("".join(json.dumps(r) + "\n" for r in keep))


def run_stage(recipe: Recipe, n: int, run_dir: Path, splits: DataSplits, ctx: DistContext, resume: bool) -> None:
    """Train stage ``n`` to the end of its schedule, keeping ``best`` (validation PGD) and ``last``."""
    spec, mode, sdir = recipe.stage(n), STAGE_MODE[n], stage_dir(run_dir, n)
    net, cfg, trained = prepare_net(recipe, n, run_dir, splits)
    net.to(ctx.device)
    if ctx.device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(trainable_parameters(net), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    start, best = 0, -1.0
    last = sdir / "last"
    if (last / "config.json").is_file():
        if not resume:
            raise StageError(f"{last} already exists; pass --resume to continue this run, or choose a new --out")
        done, _, doc = load_checkpoint(last, ctx.device)
        net.load_state_dict(done.state_dict())
        load_momentum(net, opt, last / "optimizer.safetensors")
        start, best = doc["meta"]["epoch"] + 1, doc["meta"]["best_val_robust"]
        log.info("stage %d: resuming after epoch %d (best validation PGD %.2f%%)", n, start, 100 * best)
    if ctx.is_main:
        _trim_metrics(run_dir, n, start)
    model: nn.Module = DistributedDataParallel(net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None) \
        if ctx.enabled else net
    x_val, y_val = (t.to(ctx.device) for t in first_n(splits.val, recipe.validation.n))
    trained_now = {**trained, STAGE_PRODUCES[n]: True}
    if spec.epochs == 0:  # e.g. a pre-trained main head used as is
        if ctx.is_main:
            clean, robust = validate(net, mode, x_val, y_val, recipe, ctx.device)
            meta = {"stage": n, "epoch": -1, "complete": True, "best_val_robust": robust, "val_clean": clean,
                    "val_robust": robust, "recipe": recipe.name, "seed": recipe.seed, "eps": spec.attack.eps}
            for kind in ("best", "last"):
                save_checkpoint(sdir / kind, net, cfg, trained_now if spec.init or n > 1 else trained, meta)
        ctx.barrier()
        return
    for epoch in range(start, spec.epochs):
        torch.manual_seed(epoch_seed(recipe.seed, n, epoch) + ctx.rank)
        lr = spec.lr_at(epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        desc = f"stage {n} epoch {epoch + 1}/{spec.epochs}"
        result = train_epoch(net, model, _loader(splits, recipe, ctx, n, epoch), opt, spec, mode, ctx, desc)
        if ctx.is_main:
            clean, robust = validate(net, mode, x_val, y_val, recipe, ctx.device)
            is_best = robust > best
            best = max(best, robust)
            row = {"stage": n, "mode": mode, "epoch": epoch, "lr": lr, "loss": result.loss, "val_clean": clean,
                   "val_robust": robust, "best": is_best, "seconds": round(result.seconds, 3),
                   "images_per_s": round(result.images_per_s, 1)}
            with open(Path(run_dir) / METRICS_FILE, "a") as f:
                f.write(json.dumps(row) + "\n")
            meta = {"stage": n, "epoch": epoch, "complete": epoch == spec.epochs - 1, "best_val_robust": best,
                    "val_clean": clean, "val_robust": robust, "recipe": recipe.name, "seed": recipe.seed,
                    "eps": spec.attack.eps, "validation_eps": recipe.validation.attack.eps}
            if is_best:
                save_checkpoint(sdir / "best", net, cfg, trained_now, meta)
            save_checkpoint(last, net, cfg, trained_now, meta, extra_tensors=momentum_state(net, opt))
            log.info("%s: lr %.4g loss %.4f | val clean %.2f%% PGD %.2f%%%s | %.1fs, %.0f img/s", desc, lr, result.loss,
                     100 * clean, 100 * robust, " (best)" if is_best else "", result.seconds, result.images_per_s)
        ctx.barrier()
