"""One stage-1 epoch of the CIFAR-10 TRADES WRN-34-10 recipe on synthetic CIFAR-shaped tensors.

For a machine with a GPU and no data set: the recipe's real training loop (``train_epoch``: TRADES with
PGD-10 in the loop, SGD, channels-last on CUDA) over random 3x32x32 images, once per ``--precision``
(the recipe's ``precision`` switch: fp32, or bf16 autocast), each from the same fresh initialisation and
after its own warm-up, so the two images/s figures are taken side by side in one process. ``fp32`` is
PyTorch's default on CUDA, i.e. TF32 convolutions on Ampere and later (``cudnn.allow_tf32``), as any
recipe trained with ``precision: fp32`` runs. Prints one JSON line per precision.

    python -m benchmarks.gpu_stage1_epoch --precision fp32,bf16 --images 6400   # 50 batches of 128 each
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from dhat_serve.contract import MAIN
from training.distributed import DistContext
from training.epoch import train_epoch
from training.freezing import freeze, trainable_parameters
from training.models.registry import ModelConfig, create_model
from training.recipes import Recipe, load_recipe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=49_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--recipe", default="cifar10-trades-6-3")
    parser.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.rand(args.images, 3, 32, 32)
    y = torch.randint(0, 10, (args.images,))
    for precision in args.precision.split(","):
        print(json.dumps(time_epoch(recipe, x, y, device, precision.strip())), flush=True)


def time_epoch(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, device: torch.device, precision: str) -> dict:
    """Warm up, then time one pass of stage 1's loop over ``x`` (N, 3, 32, 32) at ``precision``."""
    spec = recipe.stage1
    torch.manual_seed(0)
    loader = DataLoader(
        TensorDataset(x, y), batch_size=recipe.data.batch_size, shuffle=True, pin_memory=device.type == "cuda"
    )
    net = create_model(ModelConfig(arch=recipe.model.arch, layout=recipe.model.layout)).to(device)
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    freeze(net, ["second_head", "merger"])
    opt = torch.optim.SGD(trainable_parameters(net), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    ctx = DistContext(0, 1, 0, device)
    # warm-up: a few batches so cuDNN picks its kernels before the timed epoch
    warm = DataLoader(TensorDataset(x[:512], y[:512]), batch_size=recipe.data.batch_size)
    train_epoch(net, net, warm, opt, spec, MAIN, ctx, "warm-up", precision)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = train_epoch(net, net, loader, opt, spec, MAIN, ctx, "stage 1 epoch", precision)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    images = len(y)
    cuda = device.type == "cuda"
    return {
        "recipe": recipe.name,
        "precision": precision,
        "arch": recipe.model.arch,
        "method": spec.method,
        "pgd_steps": spec.attack.steps,
        "batch_size": recipe.data.batch_size,
        "images": images,
        "seconds": round(seconds, 2),
        "images_per_s": round(images / seconds, 1),
        "epoch_s_49000": round(49_000 * seconds / images, 1),
        "loss": round(result.loss, 4),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "bf16_autocast": precision == "bf16" and cuda,
        "tf32_convolutions": cuda and torch.backends.cudnn.allow_tf32,
        "channels_last": cuda,
        "torch": torch.__version__,
    }


if __name__ == "__main__":
    main()
