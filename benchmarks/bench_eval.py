"""Evaluation throughput: PGD-20 adversarial images per second per mode, as ``dhat eval`` crafts them.

What a researcher needs to plan a run on the whole test split: the PGD-20 rate of the twin on each mode
(the attack is 20 forward + backward passes through the mode's network), measured side by side in one
run with the ORT scoring rate of the same images. WRN-34-10 with random weights (weights do not change
speed). With ``--autoattack`` it also times standard AutoAttack on the same images.

Usage: python -m benchmarks.bench_eval [--arch wrn-34-10] [--images 8] [--device cpu|cuda] [--autoattack]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.common import OUT, random_artifact, save
from dhat_serve.contract import MODES
from dhat_serve.runtime import ModelRuntime
from training.attacks import pgd, pgd_schedule
from training.checkpoints import load_checkpoint
from training.models.dual_head import ModeView


def rate(fn, images: int, repeats: int) -> float:
    """Median images/s of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return images / float(np.median(times))


def main() -> None:
    """Time PGD-20 crafting, ORT scoring (and AutoAttack) per mode; save ``out/bench_eval_<device>.json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="wrn-34-10")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--autoattack", action="store_true")
    args = parser.parse_args()
    artifact = random_artifact(args.arch, OUT / f"eval-{args.arch}")
    net, _, _ = load_checkpoint(OUT / f"eval-{args.arch}-checkpoint", args.device)
    net.eval()
    rt = ModelRuntime.load(artifact, provider="cuda" if args.device.startswith("cuda") else "cpu")
    x = torch.rand(args.images, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(args.device)
    cfg = pgd_schedule(8 / 255, steps=20)
    rows = {}
    for mode in MODES:
        twin = ModeView(net, mode)
        with torch.no_grad():
            y = twin(x).argmax(1)  # labels = the mode's own answers, so every image is attacked (as on a real model)
        arr = x.cpu().numpy()
        rows[mode] = {
            "pgd20_images_per_s": round(
                rate(lambda twin=twin, y=y: pgd(twin, x, y, cfg), args.images, args.repeats), 3
            ),
            "ort_score_images_per_s": round(
                rate(lambda mode=mode, arr=arr: rt.run(mode, arr), args.images, args.repeats), 1
            ),
        }
        if args.autoattack:
            from pyautoattack import AutoAttack

            aa = AutoAttack(twin, device=args.device, eps=8 / 255, norm="Linf", seed=0, version="standard")
            rows[mode]["autoattack_images_per_s"] = round(
                rate(lambda aa=aa, y=y: aa.run_standard_evaluation(x, y, batch_size=args.images), args.images, 1), 3
            )
        print(mode, rows[mode], flush=True)
    save(
        f"bench_eval_{args.device.replace(':', '')}",
        {
            "arch": args.arch,
            "images": args.images,
            "device": args.device,
            "torch_threads": torch.get_num_threads(),
            "providers": rt.providers()[MODES[0]],
            "modes": rows,
        },
    )


if __name__ == "__main__":
    main()
