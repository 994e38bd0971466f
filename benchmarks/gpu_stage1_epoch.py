"""One stage-1 epoch of the CIFAR-10 TRADES WRN-34-10 recipe on synthetic CIFAR-shaped tensors.

For a machine with a GPU and no data set: the recipe's real training loop (``train_epoch``: TRADES with
PGD-10 in the loop, SGD, bf16 autocast and channels-last on CUDA) over 49,000 random 3x32x32 images.
Prints images/s. Usage: python benchmarks/gpu_stage1_epoch.py [--images 49000] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from training.distributed import DistContext
from training.freezing import freeze, trainable_parameters
from training.models.registry import ModelConfig, create_model
from training.recipes import load_recipe
from training.epoch import train_epoch
from dhat_serve.contract import MAIN  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=49_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--recipe", default="cifar10-trades-6-3")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    spec = recipe.stage1
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.rand(args.images, 3, 32, 32)
    y = torch.randint(0, 10, (args.images,))
    loader = DataLoader(TensorDataset(x, y), batch_size=recipe.data.batch_size, shuffle=True, pin_memory=device.type == "cuda")
    net = create_model(ModelConfig(arch=recipe.model.arch, layout=recipe.model.layout)).to(device)
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    freeze(net, ["second_head", "merger"])
    opt = torch.optim.SGD(trainable_parameters(net), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    ctx = DistContext(0, 1, 0, device)
    # warm-up: a few batches so cuDNN picks its kernels before the timed epoch
    warm = DataLoader(TensorDataset(x[:512], y[:512]), batch_size=recipe.data.batch_size)
    train_epoch(net, net, warm, opt, spec, MAIN, ctx, "warm-up")
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = train_epoch(net, net, loader, opt, spec, MAIN, ctx, "stage 1 epoch")
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    out = {"recipe": args.recipe, "arch": recipe.model.arch, "method": spec.method, "pgd_steps": spec.attack.steps,
           "batch_size": recipe.data.batch_size, "images": args.images, "seconds": round(seconds, 2),
           "images_per_s": round(args.images / seconds, 1), "loss": round(result.loss, 4), "device": str(device),
           "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None, "bf16_autocast": device.type == "cuda",
           "channels_last": device.type == "cuda", "torch": torch.__version__}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
