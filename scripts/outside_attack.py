"""An attack written outside this project against an artifact, beside the strong suite's per-image worst case.

Issue 35: "Expect an attack written outside this project to be run against your digits and Fashion-MNIST artifacts.
If it finds merged lower than your suite's worst case on the same images, this issue is not done." This runs
torchattacks' own implementations (Kim 2020; not ours, not pyautoattack's): APGD-T (targeted DLR, every wrong
class, 100 steps), FAB-T (minimal-norm, every wrong class) and Square (5,000 queries), crafted on the PyTorch
twin of each mode (Square: on the twin too, a black-box attack needs no gradient) and scored by ONNX Runtime on
the exported graph, on the same first-N test images as a committed strong-suite report. It reports each attack's
accuracy, the union, and the images any of them breaks that the suite's worst case counted as correct.

    pip install torchattacks==3.5.1   # a check, not a dependency of the project
    python scripts/outside_attack.py artifacts/digits runs/digits experiments/digits/digits-strong-report.json \
        --out experiments/digits/digits-outside-attack.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dhat_serve.runtime import ModelRuntime
from training.datasets.splits import first_n
from training.models.dual_head import ModeView
from training.robustness.compare import labels_digest, unpack_correct
from training.robustness.settings import WORST_CASE
from training.robustness.twin import load_twin
from training.run_dir import RunDir


def attacks(model: torch.nn.Module, eps: float, classes: int) -> dict[str, object]:
    """torchattacks' attacks at L-inf ``eps``, with the settings AutoAttack's authors use for each."""
    import torchattacks

    return {
        "apgd-t (torchattacks)": torchattacks.APGDT(
            model, norm="Linf", eps=eps, steps=100, n_restarts=1, n_classes=classes, seed=0
        ),
        "fab-t (torchattacks)": torchattacks.FAB(
            model, norm="Linf", eps=eps, steps=100, n_restarts=1, multi_targeted=True, n_classes=classes, seed=0
        ),
        "square (torchattacks)": torchattacks.Square(model, norm="Linf", eps=eps, n_queries=5000, n_restarts=1, seed=0),
    }


def run(artifact: Path, run_dir: Path, report_path: Path, out: Path, modes: list[str] | None = None) -> dict:
    """Every mode of the report, every attack: accuracy on the graph, and what the suite missed."""
    report = json.loads(report_path.read_text())
    rt = ModelRuntime.load(artifact, "cpu", exact_fp32=True)
    net, _ = load_twin(run_dir, rt.manifest)
    net.eval()
    _, splits = RunDir(run_dir).load_data(None)
    n = report["data"]["n"]
    x, y = first_n(splits.test, n)
    if labels_digest(y) != report["data"]["labels_sha256"]:
        raise SystemExit(f"{report_path} scored other images than the first {n} of this run's test split")
    eps, doc = float(report["eps"]), {"artifact": str(artifact), "report": str(report_path), "n": n, "modes": {}}
    for mode in modes or list(report["results"]):
        twin = ModeView(net, mode).eval()
        worst = unpack_correct(report["correct"][mode][WORST_CASE], n)
        union = np.ones(n, bool)
        row: dict = {"suite_worst_case": float(worst.mean())}
        for name, attack in attacks(twin, eps, rt.manifest.num_classes).items():
            start = time.perf_counter()
            x_adv = attack(x, y).detach()
            assert float((x_adv - x).abs().max()) <= eps + 1e-6 and float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
            correct = rt.run(mode, x_adv.numpy())["logits"].argmax(1) == y.numpy()
            union &= correct
            row[name] = {"graph": float(correct.mean()), "seconds": round(time.perf_counter() - start, 1)}
        missed = np.flatnonzero(worst & ~union)
        row |= {
            "outside_union": float(union.mean()),
            "worst_with_outside": float((worst & union).mean()),
            "broken_only_by_outside": missed.tolist(),
        }
        doc["modes"][mode] = row
        print(mode, json.dumps(row), flush=True)
    out.write_text(json.dumps(doc, indent=2))
    return doc


def main() -> None:
    """Parse the paths and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("report", type=Path, help="a committed strong-suite report.json of this artifact")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--modes", default=None, help="comma-separated modes (default: every mode of the report)")
    args = parser.parse_args()
    torch.manual_seed(0)
    run(args.artifact, args.run, args.report, args.out, args.modes.split(",") if args.modes else None)


if __name__ == "__main__":
    main()
