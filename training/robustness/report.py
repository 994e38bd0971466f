"""``report.md`` (a Table-I-like table), ``report.json`` (every number) and ``robustness.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: accuracies per mode and attack (graph, twin), transfer matrix and warnings."""
    attacks = report["attacks"]
    lines = [
        f"# Robustness of {report['artifact']['name']} {report['artifact']['version']}",
        "",
        f"Scored by ONNX Runtime on the exported graphs; adversarial examples crafted on the parity-checked "
        f"PyTorch twin (Square: queries to the graph). {report['data']['dataset']} test split, "
        f"n = {report['data']['n']}, L-inf eps = {report['eps']:.4g}, seed {report['seed']}; "
        f"PGD step {report['pgd_step']}.",
        "",
        "| mode | " + " | ".join(attacks) + " |",
        "|---|" + "---|" * len(attacks),
    ]
    for mode, row in report["results"].items():
        cells = [f"{100 * row['attacks'][a]['graph']:.2f}%" for a in attacks]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += ["", "Twin vs graph (accuracy of the PyTorch twin on the same examples; disagreements = examples whose "
              "predicted class differs):", "", "| mode | max abs logit diff (clean) | " + " | ".join(attacks) + " |",
              "|---|---|" + "---|" * len(attacks)]
    for mode, row in report["results"].items():
        cells = [f"{100 * row['attacks'][a]['twin']:.2f}% ({row['attacks'][a]['disagreements']})" for a in attacks]
        lines.append(f"| {mode} | {row['twin_graph_max_abs_diff']:.2e} | " + " | ".join(cells) + " |")
    if report.get("transfer"):
        targets = list(report["transfer"])
        lines += ["", "Transfer (PGD-20 crafted on the row's twin, scored on the column's graph):", "",
                  "| crafted on \\ scored on | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
        for src, row in report["transfer"].items():
            lines.append(f"| {src} | " + " | ".join(f"{100 * row[t]:.2f}%" for t in targets) + " |")
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in report["warnings"]] or ["None: no white-box accuracy above a black-box or transfer one."]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> bool:
    """Accuracy vs eps per mode; nothing is written when the curve was not asked for (--no-curve)."""
    if not any(row.get("curve") for row in report["results"].values()):
        return False
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for mode, row in report["results"].items():
        if row.get("curve"):
            ax.plot([p["eps"] for p in row["curve"]], [100 * p["graph"] for p in row["curve"]], "o-", label=mode)
    ax.axvline(report["eps"], color="gray", ls="--", lw=1)
    ax.set_xlabel("L-inf eps")
    ax.set_ylabel("accuracy under PGD-20 (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(report: dict[str, Any], out: Path) -> None:
    """Write ``report.json``, ``report.md`` and, with a curve, ``robustness.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    plot(report, out / "robustness.png")
