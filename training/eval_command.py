"""``dhat eval`` (robustness of an exported artifact, scored on its graphs) and ``dhat compare`` (Fig. 1: two
checkpoints of one run attacked against each other). Registered in the ``dhat.commands`` entry-point group, as
``training.cli``'s commands are; torch is imported inside each command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dhat_serve.console import console, fail

ATTACKS_HELP = (
    "comma-separated, or `strong` for the whole suite (AutoAttack standard, APGD-DLR, margin20/100/500 and "
    "margin100x3/x5, system100x3, evade100, Square on the graph, transfer; a per-image worst case, convergence "
    "ladders and a large-eps sanity row): clean, pgdK[xR][@STEP], apgd-ce, apgd-dlr, apgd-dlr-t, autoattack, "
    "square, marginK[xR] (APGD on the logit margin of one mode, best iterate, R runs); on the dual head's three "
    "outputs together: systemK[xR] (the three margins, each clamped at 0) and evadeK[xR] (monitor evasion: "
    "heads kept on the true class while merged flips, or both heads moved to one wrong class); the older, "
    "weaker joint[K] and agree[K] (cross-entropy, PGD, last iterate) are kept for the committed reports"
)

PRIMARY_HELP = (
    "the primary endpoint, COMPARISON@ATTACK, e.g. merged-main@pgd20 (default: merged-main under AutoAttack, "
    "else APGD-DLR-T, APGD-CE, the longest PGD); every other comparison is secondary, Holm-adjusted"
)


ArtifactArg = Annotated[Path, typer.Argument(help="artifact directory from `dhat export`")]
RunFlag = Annotated[Path, typer.Option("--run", "--run-dir", help="the run directory the artifact was exported from")]
ModesFlag = Annotated[str | None, typer.Option(help="comma-separated modes (default: every mode the artifact has)")]
AttacksFlag = Annotated[str, typer.Option(help=ATTACKS_HELP)]
EpsFlag = Annotated[str | None, typer.Option(help="L-inf budget, e.g. 8/255 (default: the run's validation eps)")]
ImagesFlag = Annotated[
    int | None, typer.Option("--n", "--n-images", help="test images to evaluate (default: the whole test split)")
]
BatchFlag = Annotated[int, typer.Option("--batch-size", help="images per attack batch (and per cached chunk)")]
SeedFlag = Annotated[int, typer.Option(help="attack seed")]
SquareFlag = Annotated[
    int,
    typer.Option(
        "--square-queries",
        help="queries of the Square attack (AutoAttack's 5,000; fewer run its p schedule compressed to that budget)",
    ),
]
NoTransferFlag = Annotated[bool, typer.Option("--no-transfer", help="skip the transfer matrix")]
NoCurveFlag = Annotated[bool, typer.Option("--no-curve", help="skip the accuracy-vs-eps curve")]
DataDirFlag = Annotated[
    str | None, typer.Option("--data-dir", help="the data set's folder, if it moved since training")
]
OutFlag = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="report directory (default reports/ARTIFACT_NAME in the current folder, outside the artifact: a "
        "re-export keeps the report and its cache)",
    ),
]
DeviceFlag = Annotated[
    str | None, typer.Option(help="cpu, cuda or cuda:N for the twin and the attacks (default: CUDA if visible)")
]
PrecisionFlag = Annotated[
    str,
    typer.Option(
        "--attack-precision",
        help="fp32, or tf32: on CUDA craft the examples with TF32 convolutions (faster); checks and scores stay fp32",
    ),
]
TargetsFlag = Annotated[
    int | None,
    typer.Option(
        "--agree-targets",
        help="target classes the agree attack tries per image (default: min(9, classes - 1), as APGD-T)",
    ),
]
NoCorruptionsFlag = Annotated[
    bool,
    typer.Option(
        "--no-corruptions",
        help="skip the shifted-traffic rows (accuracy and head disagreement on Gaussian noise, blur and low contrast)",
    ),
]
PrimaryFlag = Annotated[str | None, typer.Option(help=PRIMARY_HELP)]
CardFlag = Annotated[
    bool,
    typer.Option(
        "--card",
        help="also write the artifact's robustness card (ARTIFACT/card.json, bound to its graphs' sha256) from this "
        "report: what `dhat serve` shows on /info, OIP metadata and /metrics",
    ),
]
"""``dhat eval``'s arguments and options, declared once here so the command reads as its logic."""


def eval_cmd(
    artifact: ArtifactArg,
    run: RunFlag,
    modes: ModesFlag = None,
    attacks: AttacksFlag = "clean,pgd20",
    eps: EpsFlag = None,
    n: ImagesFlag = None,
    batch_size: BatchFlag = 250,
    seed: SeedFlag = 0,
    square_queries: SquareFlag = 5000,
    no_transfer: NoTransferFlag = False,
    no_curve: NoCurveFlag = False,
    data_dir: DataDirFlag = None,
    out: OutFlag = None,
    device: DeviceFlag = None,
    attack_precision: PrecisionFlag = "fp32",
    agree_targets: TargetsFlag = None,
    no_corruptions: NoCorruptionsFlag = False,
    primary: PrimaryFlag = None,
    card: CardFlag = False,
) -> None:
    """Evaluate robustness of the exported graphs (attacks on the parity-checked twin, scored by ORT).

    Under `torchrun --nproc_per_node N -m dhat_serve.cli eval ...` each rank attacks a shard of the test set and
    rank 0 writes one report, equal to a one-process run with the same seed. Spell --run as --run-dir and --n as
    --n-images there: torchrun reads abbreviations of its own options (--run-path, --nnodes) anywhere on the line.
    """
    from training.datasets.splits import DataError
    from training.robustness.evaluate import EvalSettings, EvaluationError, evaluate
    from training.typed_yaml import parse_number

    try:
        settings = EvalSettings(
            modes=tuple(m.strip() for m in modes.split(",") if m.strip()) if modes else None,
            attacks=tuple(a.strip() for a in attacks.split(",") if a.strip()),
            eps=None if eps is None else parse_number(eps, "--eps"),
            n=n,
            batch_size=batch_size,
            seed=seed,
            square_queries=square_queries,
            transfer=not no_transfer,
            curve=() if no_curve else EvalSettings.curve,
            data_dir=data_dir,
            device=device,
            attack_precision=attack_precision,
            agree_targets=agree_targets,
            corruptions=not no_corruptions,
            primary=primary,
        )
    except ValueError as exc:  # RecipeError is a ValueError
        fail(str(exc))
    if not run.is_dir():
        fail(f"--run {run}: no such run directory")
    report_dir = out or Path("reports") / artifact.resolve().name
    try:
        report = evaluate(artifact, run, settings, report_dir)
    except (EvaluationError, FileNotFoundError, DataError) as exc:
        fail(str(exc))
    if report is not None:  # None: a torchrun rank other than 0 (its shard is in the cache, rank 0 reports)
        show_report(report, report_dir, artifact if card else None)


def show_report(report: dict, report_dir: Path, card_of: Path | None) -> None:
    """Print the report and where it went; with ``card_of`` (an artifact), write that artifact's card from it."""
    from training.robustness.card import write_card
    from training.robustness.report import markdown

    console.print(markdown(report))
    plot = ", robustness.png" if (report_dir / "robustness.png").is_file() else ""
    console.print(f"report: {report_dir}/report.md, report.json{plot}")
    if card_of is not None:
        console.print(f"robustness card: {write_card(card_of, report_dir / 'report.json')}")


def compare(
    a: Annotated[Path, typer.Argument(help="checkpoint A, e.g. runs/r/stage1/epoch-76 (kept by stage1.keep_epochs)")],
    b: Annotated[Path, typer.Argument(help="checkpoint B of the same run, e.g. runs/r/stage1/epoch-91")],
    n: Annotated[int, typer.Option("--n", help="first N test images")] = 500,
    steps: Annotated[int, typer.Option(help="PGD steps (the paper: 100)")] = 100,
    seed: Annotated[int, typer.Option(help="attack seed")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="folder for compare.json / .md / .png")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
) -> None:
    """Fig. 1 / §III-A: does each checkpoint's PGD example fool the other? And the averaged perturbation."""
    from training.checkpoints import is_checkpoint
    from training.robustness.pair import markdown, run_compare

    for path in (a, b):
        if not is_checkpoint(path):
            fail(f"{path}: not a checkpoint (keep epochs with stageN.keep_epochs=[76,91], or use stageN/best, last)")
    if a.parent.parent.resolve() != b.parent.parent.resolve():
        fail(f"{a} and {b} are not of one run: the comparison attacks both on that run's test images")
    table = run_compare(a, b, out or Path("reports") / f"compare-{a.name}-{b.name}", n, steps, seed, device)
    console.print(markdown(table))
