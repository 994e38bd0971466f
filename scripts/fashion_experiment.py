"""Does DH-AT help on Fashion-MNIST? Train, export and evaluate a DH-AT recipe and its single-head baseline at one
or more seeds, then write the paired comparisons (README section "Does DH-AT help on Fashion-MNIST?").

    python scripts/fashion_experiment.py                       # fashion-mnist-cpu vs fashion-mnist-cpu-trades, seed 0
    python scripts/fashion_experiment.py --seeds 0,1,2         # three training runs of each, the across-seed verdict
    python scripts/fashion_experiment.py --dhat fashion-mnist --baseline none --aa-n 1000 --seeds 0,1,2,3,4  # GPU

Every phase reuses what exists (a complete run, an artifact, a report) and an interrupted training run resumes
from its last epoch, so the phases can run on different machines and a cut run continues: ``--only train``,
``--only eval`` ... A seed other than the recipe's own is a run named ``R-seedS`` (the recipe's ``seed``
overridden; the recipe's own seed keeps the name ``R``). Paths: ``runs/R``, ``artifacts/R``,
``reports/R/{pgd20,autoattack,adaptive}`` under ``--root``; the summaries go to ``experiments/DHAT/`` (see
``fashion_summary``). It calls the same functions as ``dhat train / export / eval`` (no entry points needed).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from dhat_serve.contract import MAIN, MODES
from training.robustness.settings import WORST_CASE
from training.robustness.suite import expand_attacks

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("train", "export", "eval", "aa", "adaptive", "strong", "summary")
ADAPTIVE_ATTACKS = ("clean", "pgd20", "joint", "agree")
"""The ``adaptive`` phase (issue 28): the attacks on the three outputs together and on the head-agreement monitor,
beside PGD-20 on each mode alone, plus the shifted-traffic rows; dual-head recipes only."""


def recipe_seed(recipe: str) -> int:
    """The seed the recipe itself names (its run keeps the plain name)."""
    from training.recipes import load_recipe

    return load_recipe(recipe).seed


def run_name(recipe: str, seed: int | None) -> str:
    """``R`` for the recipe's own seed (or None), else ``R-seedS``: one folder name under runs/, artifacts/,
    reports/."""
    stem = Path(recipe).stem
    return stem if seed is None or seed == recipe_seed(recipe) else f"{stem}-seed{seed}"


def train(recipe_name: str, seed: int | None, root: Path, device: str | None, data_dir: str | None) -> None:
    """``dhat train RECIPE seed=S --out runs/NAME``, resumed when a partial run exists. ``train_wall.json`` keeps every
    session (seconds, device), a cut one too (SIGTERM ends a session through ``finally``: ``main`` turns it into
    ``SystemExit``), and their sum; ``metrics.jsonl`` has each epoch's own seconds."""
    from training.pipeline import train_recipe
    from training.recipes import load_recipe, with_flags
    from training.run_dir import RunDir

    run = RunDir(root / "runs" / run_name(recipe_name, seed))
    if run.stage_complete(3):
        return
    wall = run.path / "train_wall.json"
    sessions = json.loads(wall.read_text()).get("sessions", []) if wall.is_file() else []
    start = time.time()
    recipe = with_flags(load_recipe(recipe_name, [f"seed={seed}"] if seed is not None else []), data_dir=data_dir)
    try:
        train_recipe(recipe, run.path, resume=run.is_run(), device=device)
    finally:
        if run.path.is_dir():
            sessions.append({"seconds": round(time.time() - start, 1), "device": device or "auto"})
            wall.write_text(
                json.dumps({"seconds": round(sum(s["seconds"] for s in sessions), 1), "sessions": sessions})
            )


def export(name: str, root: Path, data_dir: str | None) -> None:
    """``dhat export runs/NAME --out artifacts/NAME`` once the run is complete; again when the run's final weights are
    not the ones the artifact was exported from (a run that trained on after an export)."""
    import shutil

    from dhat_serve.manifest import load_manifest, sha256_file
    from export.artifact import export_artifact
    from training.checkpoints import WEIGHTS_FILE
    from training.run_dir import RunDir

    run, out = RunDir(root / "runs" / name), root / "artifacts" / name
    if not run.stage_complete(3):
        logging.warning("%s: training is not complete; not exporting it", run.path)
        return
    if (out / "manifest.json").is_file():
        if load_manifest(out).provenance.get("checkpoint_sha256") == sha256_file(run.final_checkpoint() / WEIGHTS_FILE):
            return
        shutil.rmtree(out)
    export_artifact(run.path, out, data_dir=data_dir)


def primary_of(attacks: tuple[str, ...], primary: str, phase: str) -> str:
    """A report's primary endpoint: the experiment's (``--primary``) in the phase that runs its attack, else none, so
    the experiment has one primary endpoint; the adaptive phase's rows are all secondary (its PGD-20 rows repeat the
    eval phase's on fewer images)."""
    target = primary.partition("@")[2]
    suite = target == WORST_CASE and phase == "strong"  # the worst case is the strong suite's column
    return primary if phase != "adaptive" and (target in attacks or suite) else "none"


def evaluate(name: str, root: Path, modes: tuple[str, ...], attack: str, args: argparse.Namespace) -> None:
    """``dhat eval`` of one attack (with clean) into ``reports/NAME/ATTACK``; reused when its report exists, resumed
    from its cached chunks when it was cut."""
    from dhat_serve.manifest import load_manifest
    from training.robustness.evaluate import EvalSettings
    from training.robustness.evaluate import evaluate as run_eval

    out = root / "reports" / name / attack
    if not (root / "artifacts" / name / "manifest.json").is_file():
        return  # not exported (training not complete)
    n = {"autoattack": args.aa_n, "adaptive": args.adaptive_n, "strong": args.strong_n}.get(attack, args.n)
    attacks = {"adaptive": ADAPTIVE_ATTACKS, "strong": ("strong",)}.get(attack, ("clean", attack))
    if (out / "report.json").is_file():
        old = json.loads((out / "report.json").read_text())
        version = load_manifest(root / "artifacts" / name).version
        same = (
            tuple(old["attacks"]) == expand_attacks(attacks, len(modes) > 1) and old["artifact"]["version"] == version
        )
        if same and (n is None or old["data"]["n"] == n):
            return
        (out / "report.json").unlink()  # other images, attacks or a re-exported artifact: score again
    settings = EvalSettings(
        modes=modes,
        attacks=attacks,
        n=n,
        batch_size=args.batch_size,
        device=args.device,
        transfer=len(modes) > 1 and (attack == "strong" or (attack == "pgd20" and not args.no_transfer)),
        curve=(),
        square_queries=args.square_queries,
        data_dir=args.data_dir,
        attack_precision=args.attack_precision,
        corruptions=attack == "adaptive",
        primary=primary_of(attacks, args.primary, attack) if len(modes) > 1 else None,
    )
    start = time.time()
    report = run_eval(root / "artifacts" / name, root / "runs" / name, settings, out)
    if report is not None:
        (out / "wall.json").write_text(
            json.dumps({"seconds": round(time.time() - start, 1), "device": report["device"]})
        )


def publish(root: Path, name: str, attack: str, dhat: str) -> None:
    """Copy ``reports/NAME/ATTACK/report.{md,json}`` (per-image results included) and its wall time to
    ``experiments/DHAT/NAME-ATTACK-*``, where the README's numbers are committed."""
    src, dst = root / "reports" / name / attack, root / "experiments" / dhat
    dst.mkdir(parents=True, exist_ok=True)
    for file in ("report.md", "report.json", "wall.json"):
        if (src / file).is_file():
            (dst / f"{name}-{attack}-{file}").write_text((src / file).read_text())


def run_phases(
    recipe: str, seed: int | None, modes: tuple[str, ...], phases: set[str], args: argparse.Namespace, dhat: str
) -> None:
    """Every asked phase of one (recipe, seed), in order; each skips what exists."""
    name = run_name(recipe, seed)
    if "train" in phases:
        train(recipe, seed, args.root, args.device, args.data_dir)
    if "export" in phases:
        export(name, args.root, args.data_dir)
    for phase, attack, wanted in (
        ("eval", "pgd20", True),
        ("aa", "autoattack", args.aa_n),
        ("adaptive", "adaptive", args.adaptive_n and len(modes) > 1),
        ("strong", "strong", args.strong_n),
    ):
        if phase in phases and wanted:
            evaluate(name, args.root, modes, attack, args)
            publish(args.root, name, attack, dhat)


def parse_args() -> argparse.Namespace:
    from training.robustness.settings import ATTACK_PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dhat", default="fashion-mnist-cpu", help="the DH-AT recipe, or none (the baseline alone)")
    parser.add_argument("--baseline", default="fashion-mnist-cpu-trades", help="single-head baseline recipe, or none")
    parser.add_argument(
        "--seeds", default=None, help="comma-separated training seeds, e.g. 0,1,2 (default: the recipe's)"
    )
    parser.add_argument("--aa-n", type=int, default=1000, help="AutoAttack on the first N test images (0: skip)")
    parser.add_argument("--n", type=int, default=None, help="clean and PGD-20 on the first N (default: all 10,000)")
    parser.add_argument(
        "--adaptive-n",
        type=int,
        default=2000,
        help="the adaptive phase (joint, agree, corruptions) on the first N (0: skip)",
    )
    parser.add_argument(
        "--strong-n",
        type=int,
        default=1000,
        help="the strong suite (AutoAttack, margin, system, evade, Square, transfer; its per-image worst "
        "case is the primary endpoint) on the first N (0: skip)",
    )
    parser.add_argument(
        "--square-queries",
        type=int,
        default=5000,
        help="queries of the Square attack on the graph (AutoAttack's 5,000)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda (default: CUDA if visible)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per attack chunk")
    parser.add_argument(
        "--attack-precision",
        default="fp32",
        choices=ATTACK_PRECISIONS,
        help="tf32: craft on CUDA with TF32 convolutions (faster); scores stay fp32",
    )
    parser.add_argument(
        "--primary",
        default="merged-main@worst-case",
        help="the primary endpoint, COMPARISON@ATTACK, named before the results (issue 35: merged - main "
        "under the strong suite's per-image worst case; it was merged-main@pgd20 before)",
    )
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases of {', '.join(PHASES)}")
    parser.add_argument(
        "--no-transfer",
        action="store_true",
        help="skip the PGD-20 phase's transfer matrix (slow where ONNX Runtime has only its CPU provider); "
        "the strong suite always has it",
    )
    parser.add_argument("--data-dir", default=None, help="the data set's folder (default: the recipe's, or Debian's)")
    parser.add_argument("--root", type=Path, default=ROOT, help="where runs/, artifacts/, reports/, experiments/ go")
    return parser.parse_args()


def main() -> None:
    from fashion_summary import summary

    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` cuts a session: let `finally` record it
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.device != "cpu":
        import torch

        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels (CUDA only)
    baseline = None if args.baseline == "none" else args.baseline  # names or YAML paths; folders use the stem
    dhat = None if args.dhat == "none" else args.dhat
    seeds: list[int | None] = [int(s) for s in args.seeds.split(",")] if args.seeds else [None]
    phases = {p.strip() for p in args.only.split(",")}
    home = Path(dhat or baseline).stem
    for seed in seeds:  # seed by seed: a cut experiment has whole seeds done, the next one resumes
        for recipe, modes in ((dhat, MODES), (baseline, (MAIN,))):
            if recipe is not None:
                run_phases(recipe, seed, modes, phases, args, home)
    if "summary" in phases and dhat:
        names = [(run_name(dhat, s), baseline and run_name(baseline, s), s) for s in seeds]
        summary(args.root, Path(dhat).stem, names, args.primary)


if __name__ == "__main__":
    main()
