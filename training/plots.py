"""``training_curves.png``: clean and robust validation accuracy per epoch and stage, best marked."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_metrics(path: Path) -> list[dict]:
    """Rows of ``metrics.jsonl`` (empty when the file is missing)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training_curves(metrics_file: Path, out: Path) -> Path:
    """One panel per stage: validation clean and PGD accuracy per epoch, best epochs marked."""
    rows = read_metrics(metrics_file)
    stages = sorted({r["stage"] for r in rows})
    fig, axes = plt.subplots(1, max(len(stages), 1), figsize=(4.5 * max(len(stages), 1), 3.6), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=True):
        rs = [r for r in rows if r["stage"] == stage]
        ep = [r["epoch"] for r in rs]  # 1-based in metrics.jsonl
        ax.plot(ep, [100 * r["val_clean"] for r in rs], "o-", label="clean")
        ax.plot(ep, [100 * r["val_robust"] for r in rs], "s-", label="robust (PGD)")
        # the epoch the stage kept as ``best`` (the last row that became best, by the stage's own select rule)
        picked = [r for r in rs if r.get("best")] or [max(rs, key=lambda r: r["val_robust"])]
        best = picked[-1]
        ax.axvline(best["epoch"], color="gray", ls="--", lw=1)
        ax.annotate(
            f"best: epoch {best['epoch']}",
            (best["epoch"], 100 * best["val_robust"]),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=8,
        )
        ax.set_title(f"stage {stage} ({rs[0]['mode']})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
