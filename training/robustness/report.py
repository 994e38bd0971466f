"""The report of ``dhat eval``: assembled from the scores (``build_report``), written as ``report.md`` (a
Table-I-like table), ``report.json`` (every number) and ``robustness.png``."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import onnxruntime as ort
import torch

from dhat_serve import __version__
from dhat_serve.contract import MERGED
from dhat_serve.manifest import Manifest
from training.robustness.cache import Job, crafted_on
from training.robustness.compare import labels_digest, pack_correct
from training.robustness.cost import model_costs
from training.robustness.heads import head_disagreement
from training.robustness.scoring import (
    adaptive_comparisons,
    adaptive_warnings,
    comparisons,
    crafting_times,
    default_primary,
    mark_primary,
    masking_warnings,
    sanity_correct,
    score_mode,
    transfer_matrix,
)
from training.robustness.sections import (
    accuracy_table,
    adaptive_section,
    comparison_section,
    convergence_section,
    cost_section,
    disagreement_section,
    pct,
    sanity_section,
    shift_section,
    timing_section,
)
from training.robustness.settings import WORST_CASE
from training.robustness.shift import shifted_traffic
from training.robustness.worst_case import convergence, sanity_rows, worst_case_row

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def build_report(
    job: Job, diffs: dict[str, float], manifest: Manifest, artifact_dir: Path, run_dir: Path, ckpt: Path, recipe: Any
) -> dict[str, Any]:
    """Phase 2 on rank 0: score everything from the cache and assemble ``report.json``."""
    results: dict[str, Any] = {}
    correct: dict[str, dict[str, np.ndarray]] = {}
    adversarial: dict[str, dict[str, torch.Tensor]] = {}  # crafted against (a mode, or all) -> attack -> examples
    for mode in job.settings.modes:
        row, correct[mode], examples = score_mode(job, mode)
        results[mode] = {"twin_graph_max_abs_diff": diffs[mode], **row}
        for name, x_adv in examples.items():
            adversarial.setdefault(crafted_on(name, mode), {})[name] = x_adv
    transfer, transfer_ci, survived = transfer_matrix(job) if job.settings.transfer else ({}, {}, {})
    worst = {}
    for mode in job.settings.modes:
        worst[mode], correct[mode][WORST_CASE] = worst_case_row(correct[mode], survived.get(mode))
    converged, convergence_warnings = convergence(results, len(job.y))
    sanity, sanity_warnings = sanity_rows(sanity_correct(job)) if job.settings.sanity else ({}, [])
    comps, adaptive = comparisons(correct), adaptive_comparisons(results, correct)
    asked = job.settings.primary
    primary = mark_primary(comps, adaptive, None if asked == "none" else asked or default_primary(job.settings.attacks))
    dual = MERGED in manifest.modes  # a single-head artifact has no heads to disagree
    return {
        **provenance(job, manifest, artifact_dir, run_dir, ckpt, recipe),
        "cost": model_costs(artifact_dir, manifest, job.settings.modes),
        "results": results,
        "craft_seconds": crafting_times(job),
        "worst_case": worst,
        "convergence": converged,
        "sanity": sanity,
        "comparisons": comps,
        "primary_endpoint": primary,
        "correct": {mode: {name: pack_correct(v) for name, v in row.items()} for mode, row in correct.items()},
        "transfer": transfer,
        "transfer_ci95": transfer_ci,
        "adaptive": adaptive,
        "head_disagreement": head_disagreement(job.rt, job.x, job.y, adversarial) if dual else None,
        "shifted_traffic": shifted_traffic(job.rt, job.x, job.y, job.settings.modes, job.settings.seed)
        if job.settings.corruptions
        else [],
        "warnings": masking_warnings(results, transfer)
        + adaptive_warnings(adaptive)
        + convergence_warnings
        + sanity_warnings,
    }


def provenance(
    job: Job, manifest: Manifest, artifact_dir: Path, run_dir: Path, ckpt: Path, recipe: Any
) -> dict[str, Any]:
    """What was measured, on what and how: the artifact's hashes, the run, the data and its label digest, the
    attack settings and where they ran, the tool versions (what a reader needs to trust or repeat a number)."""
    return {
        "artifact": {
            "dir": str(artifact_dir),
            "name": manifest.name,
            "version": manifest.version,
            "hashes": {m: g.sha256 for m, g in manifest.modes.items()},
        },
        "run": {"dir": str(run_dir), "checkpoint": str(ckpt), "recipe": recipe.name},
        "data": {
            "dataset": recipe.data.dataset,
            "n": len(job.y),
            "split": "test"
            if recipe.validation.source == "train"
            else f"test minus the {recipe.data.val_size} validation images (validation.source: test)",
            "labels_sha256": labels_digest(job.y),
        },
        "eps": job.eps,
        "seed": job.settings.seed,
        "attacks": list(job.settings.attacks),
        "pgd_step": "2.5 * eps / steps unless the attack names one (pgdK@STEP), uniform random start",
        "square_queries": job.settings.square_queries,
        "device": str(job.dist.device),
        "world_size": job.dist.world_size,
        "providers": job.rt.providers(),
        "attack_precision": "tf32" if job.tf32() else "fp32",
        "versions": {
            "dhat_serve": __version__,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "python": platform.python_version(),
        },
    }


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: accuracies with 95 % intervals per mode and attack (graph, twin), the paired merged-vs-head
    differences, the transfer matrix, head disagreement and warnings."""
    attacks = report["attacks"]
    lines = [
        f"# Robustness of {report['artifact']['name']} {report['artifact']['version']}",
        "",
        f"Scored by ONNX Runtime on the exported graphs; adversarial examples crafted on the parity-checked "
        f"PyTorch twin (Square: queries to the graph). {report['data']['dataset']} "
        f"{report['data'].get('split', 'test')}"
        f"{' split' if report['data'].get('split', 'test') == 'test' else ''}, "
        f"n = {report['data']['n']}, L-inf eps = {report['eps']:.4g}, seed {report['seed']}; "
        f"PGD step {report['pgd_step']}. Attacks ran on {report.get('device', 'cpu')} "
        f"{'in TF32, scored in fp32, ' if report.get('attack_precision') == 'tf32' else ''}"
        f"({report.get('world_size', 1)} process(es)); graphs on {_providers(report)}. "
        "Brackets: 95 % Wilson intervals.",
        "",
        *accuracy_table(report),
    ]
    lines += comparison_section(report)
    lines += [
        "",
        "Twin vs graph (accuracy of the PyTorch twin on the same examples; disagreements = examples whose "
        "predicted class differs):",
        "",
        "| mode | max abs logit diff (clean) | " + " | ".join(attacks) + " |",
        "|---|---|" + "---|" * len(attacks),
    ]
    for mode, row in report["results"].items():
        twin = {a: row["attacks"][a] for a in attacks}
        cells = [f"{pct(twin[a]['twin'], twin[a].get('twin_ci95'))} ({twin[a]['disagreements']})" for a in attacks]
        lines.append(f"| {mode} | {row['twin_graph_max_abs_diff']:.2e} | " + " | ".join(cells) + " |")
    if report.get("transfer"):
        targets = list(report["transfer"])
        cis = report.get("transfer_ci95", {})
        lines += [
            "",
            "Transfer (PGD-20 crafted on the row's twin, scored on the column's graph):",
            "",
            "| crafted on \\ scored on | " + " | ".join(targets) + " |",
            "|---|" + "---|" * len(targets),
        ]
        for src, row in report["transfer"].items():
            lines.append(f"| {src} | " + " | ".join(pct(row[t], cis.get(src, {}).get(t)) for t in targets) + " |")
    lines += convergence_section(report) + sanity_section(report) + timing_section(report) + cost_section(report)
    lines += adaptive_section(report) + disagreement_section(report) + shift_section(report)
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in report["warnings"]] or [
        "None: no white-box accuracy above a black-box or transfer one."
    ]
    return "\n".join(lines) + "\n"


def _providers(report: dict[str, Any]) -> str:
    names = {p for ps in report.get("providers", {}).values() for p in ps[:1]}
    return ", ".join(sorted(names)) or "CPUExecutionProvider"


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
