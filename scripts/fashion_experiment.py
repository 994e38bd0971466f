"""Does DH-AT help on Fashion-MNIST? Train, export and evaluate a DH-AT recipe and its single-head baseline,
then write the paired comparison (README section "Does DH-AT help on Fashion-MNIST?").

    python scripts/fashion_experiment.py                       # fashion-mnist-cpu vs fashion-mnist-cpu-trades
    python scripts/fashion_experiment.py --dhat fashion-mnist --baseline none --aa-n 1000   # the GPU recipe

Every phase reuses what exists (a complete run, an artifact, a report), so the phases can run on different
machines: ``--only train``, ``--only eval`` ... Paths: ``runs/R``, ``artifacts/R``, ``reports/R/{pgd20,
autoattack,adaptive}`` under ``--root``; the summary goes to ``experiments/DHAT/summary.{md,json}``. It calls the
same functions as ``dhat train / export / eval`` (no entry points needed, so it runs from a checkout).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from dhat_serve.contract import MAIN, MERGED, MODES, SECOND

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("train", "export", "eval", "aa", "adaptive", "summary")
ADAPTIVE_ATTACKS = ("clean", "pgd20", "joint", "agree")
"""The ``adaptive`` phase (issue 28): the attacks on the three outputs together and on the head-agreement monitor,
beside PGD-20 on each mode alone, plus the shifted-traffic rows; dual-head recipes only."""


def train(recipe_name: str, root: Path, device: str | None, data_dir: str | None) -> None:
    """``dhat train RECIPE --out runs/RECIPE`` (resumed when a partial run exists); wall time to train_wall.json."""
    from training.pipeline import train_recipe
    from training.recipes import load_recipe, with_flags
    from training.run_dir import RunDir

    run = RunDir(root / "runs" / Path(recipe_name).stem)
    if run.stage_complete(3):
        return
    start = time.time()
    recipe = with_flags(load_recipe(recipe_name), data_dir=data_dir)
    train_recipe(recipe, run.path, resume=run.is_run(), device=device)
    (run.path / "train_wall.json").write_text(json.dumps({"seconds": round(time.time() - start, 1), "device": device}))


def export(recipe_name: str, root: Path, data_dir: str | None) -> None:
    """``dhat export runs/RECIPE --out artifacts/RECIPE``."""
    from export.artifact import export_artifact

    name = Path(recipe_name).stem
    if not (root / "artifacts" / name / "manifest.json").is_file():
        export_artifact(root / "runs" / name, root / "artifacts" / name, data_dir=data_dir)


def evaluate(recipe_name: str, root: Path, modes: tuple[str, ...], attack: str, args: argparse.Namespace) -> None:
    """``dhat eval`` of one attack (with clean) into ``reports/RECIPE/ATTACK``; reused when its report exists."""
    from training.robustness.evaluate import EvalSettings
    from training.robustness.evaluate import evaluate as run_eval

    name = Path(recipe_name).stem
    out = root / "reports" / name / attack
    if (out / "report.json").is_file():
        return
    n = {"autoattack": args.aa_n, "adaptive": args.adaptive_n}.get(attack, args.n)
    attacks = ADAPTIVE_ATTACKS if attack == "adaptive" else ("clean", attack)
    settings = EvalSettings(modes=modes, attacks=attacks, n=n, batch_size=args.batch_size, device=args.device,
                            transfer=attack == "pgd20" and len(modes) > 1 and not args.no_transfer, curve=(),
                            data_dir=args.data_dir, attack_precision=args.attack_precision,
                            corruptions=attack == "adaptive")
    start = time.time()
    report = run_eval(root / "artifacts" / name, root / "runs" / name, settings, out)
    if report is not None:
        (out / "wall.json").write_text(json.dumps({"seconds": round(time.time() - start, 1), "device": report["device"]}))


def publish(root: Path, recipe_name: str, attack: str) -> None:
    """Copy ``reports/RECIPE/ATTACK/report.{md,json}`` (per-image results included) and its wall time to
    ``experiments/RECIPE/report-ATTACK.*``, where the README's numbers are committed."""
    src, dst = root / "reports" / recipe_name / attack, root / "experiments" / recipe_name
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "report.json", "wall.json"):
        if (src / name).is_file():
            (dst / f"{Path(name).stem}-{attack}{Path(name).suffix}").write_text(
                (src / name).read_text())


def load_report(root: Path, recipe_name: str, attack: str) -> dict[str, Any] | None:
    path = root / "reports" / recipe_name / attack / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def pct(v: float, ci: list[float] | None = None) -> str:
    return f"{100 * v:.2f}" + (f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]" if ci else "")


def accuracy_rows(reports: dict[str, dict[str, Any]], dhat: str, baseline: str | None) -> list[str]:
    """Markdown rows: model, mode, then each attack's graph accuracy with its Wilson interval and n."""
    lines = ["| model | mode | clean (n) | PGD-20 (n) | AutoAttack (n) |", "|---|---|---|---|---|"]
    rows = [(dhat, m) for m in MODES] + ([(baseline, MAIN)] if baseline else [])
    for recipe, mode in rows:
        cells = []
        for attack in ("clean", "pgd20", "autoattack"):
            rep = reports.get(f"{recipe}/{'autoattack' if attack == 'autoattack' else 'pgd20'}")
            r = rep and rep["results"].get(mode, {}).get("attacks", {}).get(attack)
            cells.append(f"{pct(r['graph'], r['graph_ci95'])} ({rep['data']['n']})" if r else "-")
        lines.append(f"| {recipe} | {mode} | " + " | ".join(cells) + " |")
    return lines


def paired_rows(reports: dict[str, dict[str, Any]], dhat: str, baseline: str | None) -> tuple[list[str], list[dict]]:
    """Markdown rows and JSON records of every paired difference the data allow (same images, same attack)."""
    from training.robustness.compare import compare

    pairs = [((dhat, MERGED), (dhat, MAIN)), ((dhat, MERGED), (dhat, SECOND))]
    if baseline:
        pairs += [((dhat, MERGED), (baseline, MAIN)), ((dhat, MAIN), (baseline, MAIN))]
    lines = ["| comparison | attack | n | difference, points [95 % CI] | McNemar p | verdict |", "|---|---|---|---|---|---|"]
    records = []
    for (ra, ma), (rb, mb) in pairs:
        for attack, kind in (("clean", "pgd20"), ("pgd20", "pgd20"), ("autoattack", "autoattack")):
            a, b = reports.get(f"{ra}/{kind}"), reports.get(f"{rb}/{kind}")
            if not (a and b and ma in a["results"] and mb in b["results"]):
                continue
            d = compare(a, ma, b, mb, attack)
            name = f"{ra}:{ma} - {rb}:{mb}" if ra != rb else f"{ma} - {mb}"
            records.append({"a": [ra, ma], "b": [rb, mb], "attack": attack, **d})
            lines.append(f"| {name} | {attack} | {d['n']} | {100 * d['difference']:+.2f} "
                         f"[{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}] | {d['mcnemar_p']:.3g} | {d['verdict']} |")
    return lines, records


def summary(root: Path, dhat: str, baseline: str | None) -> None:
    """``experiments/DHAT/summary.md`` and ``.json``: accuracies, paired differences, wall times, devices."""
    reports = {f"{r}/{k}": rep for r in filter(None, (dhat, baseline)) for k in ("pgd20", "autoattack")
               if (rep := load_report(root, r, k)) is not None}
    lines, records = paired_rows(reports, dhat, baseline)
    walls = {r: json.loads(p.read_text()) for r in filter(None, (dhat, baseline))
             if (p := root / "runs" / r / "train_wall.json").is_file()}
    devices = {k: rep["device"] for k, rep in reports.items()}
    md = [f"# {dhat}" + (f" vs {baseline}" if baseline else ""), "", "Graph accuracy (%) on the test split, "
          "95 % Wilson intervals; eps = " + (f"{next(iter(reports.values()))['eps']:g}" if reports else "?"), "",
          *accuracy_rows(reports, dhat, baseline), "", "Paired differences on the same test images "
          "(bootstrap 95 % interval; exact McNemar p):", "", *lines, "",
          f"Training wall time: {json.dumps(walls)}; evaluation devices: {json.dumps(devices)}", ""]
    out = root / "experiments" / dhat
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(md))
    (out / "summary.json").write_text(json.dumps({"comparisons": records, "train_wall": walls, "devices": devices,
                                                  "reports": sorted(reports)}, indent=2))
    print("\n".join(md))


def main() -> None:
    from training.robustness.settings import ATTACK_PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dhat", default="fashion-mnist-cpu", help="the DH-AT recipe, or none (the baseline alone)")
    parser.add_argument("--baseline", default="fashion-mnist-cpu-trades", help="single-head baseline recipe, or none")
    parser.add_argument("--aa-n", type=int, default=1000, help="AutoAttack on the first N test images (0: skip)")
    parser.add_argument("--n", type=int, default=None, help="clean and PGD-20 on the first N (default: all 10,000)")
    parser.add_argument("--adaptive-n", type=int, default=2000,
                        help="the adaptive phase (joint, agree, corruptions) on the first N (0: skip)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: CUDA if visible)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per attack chunk")
    parser.add_argument("--attack-precision", default="fp32", choices=ATTACK_PRECISIONS,
                        help="tf32: craft on CUDA with TF32 convolutions (faster); scores stay fp32")
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases of {', '.join(PHASES)}")
    parser.add_argument("--no-transfer", action="store_true",
                        help="skip the transfer matrix (slow where ONNX Runtime has only its CPU provider)")
    parser.add_argument("--data-dir", default=None, help="the data set's folder (default: the recipe's, or Debian's)")
    parser.add_argument("--root", type=Path, default=ROOT, help="where runs/, artifacts/, reports/, experiments/ go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.device != "cpu":
        import torch

        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels (CUDA only)
    baseline = None if args.baseline == "none" else args.baseline  # names or YAML paths; folders use the stem
    dhat = None if args.dhat == "none" else args.dhat
    phases = {p.strip() for p in args.only.split(",")}
    for recipe, modes in ((dhat, MODES), (baseline, (MAIN,))):
        if recipe is None:
            continue
        if "train" in phases:
            train(recipe, args.root, args.device, args.data_dir)
        if "export" in phases:
            export(recipe, args.root, args.data_dir)
        if "eval" in phases:
            evaluate(recipe, args.root, modes, "pgd20", args)
        if "aa" in phases and args.aa_n:
            evaluate(recipe, args.root, modes, "autoattack", args)
        if "adaptive" in phases and args.adaptive_n and len(modes) > 1:
            evaluate(recipe, args.root, modes, "adaptive", args)
            publish(args.root, Path(recipe).stem, "adaptive")
    if "summary" in phases and dhat:
        summary(args.root, Path(dhat).stem, baseline and Path(baseline).stem)


if __name__ == "__main__":
    main()
