"""Stage-2 epoch time vs a single-head adversarial-training epoch of the same architecture.

Same data (digits, 16x16), same batches, same TRADES PGD-10 loss, same SGD; the stage-2 step runs trunk
(frozen, eval-mode BatchNorm) + second head only, the single-head step runs trunk + head, all trainable.
Interleaved repeats in one process; the ratio is the target (at most 1.05x).
Usage: python -m benchmarks.bench_stage2 [--arch wrn-16-2-s8] [--repeats 3]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

from benchmarks.common import interleaved, save
from dhat_serve.contract import MAIN, SECOND
from training.datasets.digits import load_digits_splits
from training.distributed import DistContext
from training.epoch import train_epoch
from training.freezing import freeze, trainable_parameters
from training.models.dual_head import DualHeadNet, SingleHeadNet
from training.models.registry import ModelConfig, create_model
from training.recipes import load_recipe


class AsDual(torch.nn.Module):
    """Lets ``train_epoch`` drive a single-head net (it calls ``net(x, mode)``)."""

    def __init__(self, net: SingleHeadNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, mode: str = MAIN) -> torch.Tensor:
        return self.net(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="wrn-16-2-s8")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    splits = load_digits_splits(16)
    spec = load_recipe("digits").stage2
    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    loader = DataLoader(splits.train, batch_size=64, shuffle=False)
    cfg = dict(arch=args.arch, num_classes=10, in_channels=1, input_size=16)
    dual: DualHeadNet = create_model(ModelConfig(layout="symmetric", **cfg))
    freeze(dual, ["trunk", "main_head", "merger"])
    single = create_model(ModelConfig(layout="single", **cfg))
    opt_dual = torch.optim.SGD(trainable_parameters(dual), lr=0.01, momentum=0.9)
    opt_single = torch.optim.SGD(single.parameters(), lr=0.01, momentum=0.9)
    wrapped = AsDual(single)
    times = interleaved(
        {
            "stage2_epoch": lambda: train_epoch(dual, dual, loader, opt_dual, spec, SECOND, ctx, "stage 2"),
            "single_head_epoch": lambda: train_epoch(wrapped, wrapped, loader, opt_single, spec, MAIN, ctx, "single"),
        },
        repeats=args.repeats,
    )
    save(
        "stage2_vs_single",
        {
            "arch": args.arch,
            "images_per_epoch": len(splits.train),
            "method": spec.method,
            "pgd_steps": spec.attack.steps,
            "seconds": times,
            "ratio_stage2_over_single": times["stage2_epoch"] / times["single_head_epoch"],
            "target": "<= 1.05",
            "torch_threads": torch.get_num_threads(),
        },
    )


if __name__ == "__main__":
    main()
