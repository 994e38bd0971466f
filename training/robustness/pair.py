"""``dhat compare CKPT_A CKPT_B``: the paper's motivating experiment (Fig. 1 and §III-A).

Two checkpoints of one training run (the 76th and 91st epochs of TRADES in the paper) are attacked with
PGD-100 each, on the same test images. The table says how each one classifies its own adversarial
examples and the other's (do they fool each other?), and the examples made with the averaged
perturbation (δ_A + δ_B) / 2 (the introduction's two-model experiment). The figure shows, for a few
images, the clean image, both adversarial images and both perturbations enhanced 20× (Fig. 1's rows).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from training.attacks import pgd, pgd_schedule
from training.checkpoints import load_checkpoint, read_meta
from training.datasets.splits import first_n
from training.models.dual_head import DualHeadNet, ModeView
from training.run_dir import RunDir
from training.stage_table import STAGES

ENHANCE = 20.0  # Fig. 1: "the adversarial noises are enhanced by 20x"


def checkpoint_view(path: Path, device: torch.device) -> tuple[torch.nn.Module, str]:
    """A checkpoint as the classifier its stage trained (main head for stage 1, ...), and a label for it."""
    net, _, _ = load_checkpoint(path, device)
    meta = read_meta(path)
    mode = next(s.mode for s in STAGES if s.number == (meta.stage or 1)) if isinstance(net, DualHeadNet) else None
    view = ModeView(net, mode).eval() if mode else net.eval()
    return view, f"{path.parent.name}/{path.name} (epoch {meta.epochs_done})"


def accuracy_on(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on (N, C, H, W) ``x`` against labels (N,) ``y``."""
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def compare_checkpoints(
    a: Path, b: Path, n: int = 500, steps: int = 100, seed: int = 0, device: str = "cpu"
) -> tuple[dict[str, Any], dict]:
    """The table (JSON) and the tensors the figure needs: PGD-``steps`` on the first ``n`` test images."""
    recipe, splits = RunDir(a.parent.parent).load_data()
    dev = torch.device(device)
    x, y = (t.to(dev) for t in first_n(splits.test, n))
    (model_a, name_a), (model_b, name_b) = checkpoint_view(a, dev), checkpoint_view(b, dev)
    cfg = pgd_schedule(recipe.validation.attack.eps, steps)
    torch.manual_seed(seed)
    x_a, x_b = pgd(model_a, x, y, cfg), pgd(model_b, x, y, cfg)
    x_avg = (x + ((x_a - x) + (x_b - x)) / 2).clamp(0, 1)
    rows = {
        label: {
            "clean": accuracy_on(m, x, y),
            f"PGD-{steps} of A": accuracy_on(m, x_a, y),
            f"PGD-{steps} of B": accuracy_on(m, x_b, y),
            "averaged perturbation": accuracy_on(m, x_avg, y),
        }
        for label, m in (("A", model_a), ("B", model_b))
    }
    table = {
        "A": name_a,
        "B": name_b,
        "n": len(y),
        "eps": cfg.eps,
        "attack": f"PGD-{steps}, step {cfg.step:.4g}",
        "seed": seed,
        "accuracy": rows,
        "prediction_examples": predictions(model_a, model_b, x_a, x_b, y, splits.class_names),
    }
    return table, {"x": x.cpu(), "x_a": x_a.cpu(), "x_b": x_b.cpu()}


def predictions(
    model_a: torch.nn.Module,
    model_b: torch.nn.Module,
    x_a: torch.Tensor,
    x_b: torch.Tensor,
    y: torch.Tensor,
    names: tuple[str, ...],
    k: int = 4,
) -> list[dict[str, str]]:
    """Fig. 1's table for the first ``k`` images: what A and B predict on each one's adversarial example."""
    with torch.no_grad():
        preds = [m(xs[:k]).argmax(1) for m in (model_a, model_b) for xs in (x_a, x_b)]
    keys = ("A on A's", "A on B's", "B on A's", "B on B's")
    return [
        {"true": names[int(y[i])], **{key: names[int(p[i])] for key, p in zip(keys, preds, strict=True)}}
        for i in range(min(k, len(y)))
    ]


def markdown(table: dict[str, Any]) -> str:
    """``compare.md``: who is fooled by whose examples, and by the averaged perturbation."""
    cols = list(next(iter(table["accuracy"].values())))
    lines = [
        f"# {table['A']} (A) vs {table['B']} (B)",
        "",
        f"{table['attack']}, eps {table['eps']:.4g}, first {table['n']} test images, seed {table['seed']}. "
        "Accuracy (%) of each checkpoint (rows) on each set of examples (columns):",
        "",
        "| checkpoint | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for who, row in table["accuracy"].items():
        lines.append(f"| {who} | " + " | ".join(f"{100 * row[c]:.2f}" for c in cols) + " |")
    lines += [
        "",
        "Predictions on the first images (Fig. 1's table):",
        "",
        "| true | A on A's | A on B's | B on A's | B on B's |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(p.values()) + " |" for p in table["prediction_examples"]]
    return "\n".join(lines) + "\n"


def figure(tensors: dict[str, torch.Tensor], path: Path, k: int = 4) -> None:
    """Fig. 1's layout per image: clean, A's and B's adversarial images, and their noise enhanced 20×."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, x_a, x_b = (tensors[key][:k] for key in ("x", "x_a", "x_b"))
    panels = [
        ("clean", x),
        ("adv. of A", x_a),
        ("adv. of B", x_b),
        ("noise A ×20", (0.5 + ENHANCE * (x_a - x)).clamp(0, 1)),
        ("noise B ×20", (0.5 + ENHANCE * (x_b - x)).clamp(0, 1)),
    ]
    fig, axes = plt.subplots(len(x), len(panels), figsize=(2 * len(panels), 2 * len(x)), squeeze=False)
    for i in range(len(x)):
        for j, (title, images) in enumerate(panels):
            img = images[i].permute(1, 2, 0).squeeze(-1).numpy()
            axes[i][j].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            axes[i][j].set_xticks([]), axes[i][j].set_yticks([])
            if i == 0:
                axes[i][j].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_compare(
    a: Path, b: Path, out: Path, n: int = 500, steps: int = 100, seed: int = 0, device: str = "cpu"
) -> dict[str, Any]:
    """Write ``out/compare.{json,md,png}`` and return the table."""
    table, tensors = compare_checkpoints(a, b, n, steps, seed, device)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(table, indent=2))
    (out / "compare.md").write_text(markdown(table))
    figure(tensors, out / "compare.png")
    return table
