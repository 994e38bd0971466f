"""``dhat gate``: the rollout gate (``training.robustness.gate``) as a command whose exit status a deploy job reads:
0 pass, 1 fail (naming the mode and attack), 2 error (refused input: different data, classes, shape or eps, a
tampered artifact, a bad flag). Registered in the ``dhat.commands`` entry-point group; torch is imported inside."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dhat_serve.console import console, fail

Candidate = Annotated[Path, typer.Argument(help="the candidate artifact directory (from `dhat export`)")]
CandidateRun = Annotated[Path, typer.Option("--run", "--run-dir", help="the run the candidate was exported from")]
Current = Annotated[Path, typer.Option("--against", help="the artifact serving now, that the candidate would replace")]
CurrentRun = Annotated[Path, typer.Option("--against-run", help="the run the current artifact was exported from")]
Attacks = Annotated[
    str, typer.Option(help="comma-separated attacks of `dhat eval` (or `strong`); each is a cell of the gate")
]
Images = Annotated[int, typer.Option("--n", "--n-images", help="test images both artifacts are evaluated on")]
Margin = Annotated[
    float,
    typer.Option(help="non-inferiority margin in accuracy points: a cell fails when its interval reaches below -PTS"),
]
Eps = Annotated[str | None, typer.Option(help="L-inf budget, e.g. 8/255 (default: the runs' own, which must match)")]
Out = Annotated[Path | None, typer.Option("--out", help="gate folder (default reports/gate-CANDIDATE-vs-CURRENT)")]
Card = Annotated[bool, typer.Option("--card", help="on pass, write the candidate's card.json from its report")]
Device = Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N for the attacks (default: CUDA if visible)")]


def gate(
    candidate: Candidate,
    run: CandidateRun,
    against: Current,
    against_run: CurrentRun,
    attacks: Attacks = "clean,pgd20",
    n: Images = 1000,
    margin: Margin = 1.0,
    eps: Eps = None,
    seed: Annotated[int, typer.Option(help="attack seed (the same for both artifacts)")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="images per attack batch")] = 250,
    out: Out = None,
    card: Card = False,
    device: Device = None,
) -> None:
    """Roll out only what is no less robust: both artifacts attacked on the same images, paired per mode and attack."""
    from training.datasets.splits import DataError
    from training.robustness.card import write_card
    from training.robustness.evaluate import EvalSettings, EvaluationError
    from training.robustness.gate import Side, run_gate
    from training.typed_yaml import parse_number

    for flag, path in (("--run", run), ("--against-run", against_run)):
        if not path.is_dir():
            fail(f"{flag} {path}: no such run directory")
    folder = out or Path("reports") / f"gate-{candidate.resolve().name}-vs-{against.resolve().name}"
    try:
        budget = None if eps is None else parse_number(eps, "--eps")
        names = tuple(a.strip() for a in attacks.split(",") if a.strip())
        settings = EvalSettings(attacks=names, eps=budget, n=n, batch_size=batch_size, seed=seed, device=device)
        doc = run_gate(Side(candidate, run), Side(against, against_run), settings, margin, folder)
        written = write_card(candidate, folder / "candidate" / "report.json") if card and doc["passed"] else None
    except (ValueError, EvaluationError, FileNotFoundError, DataError) as exc:
        fail(str(exc))
    except Exception as exc:  # exit 1 means "less robust": anything else that stops the gate is an error (exit 2)
        fail(f"the gate could not finish: {type(exc).__name__}: {exc}")
    console.print((folder / "gate.md").read_text())
    console.print(f"gate: {folder}/gate.md, gate.json; reports in {folder}/candidate, {folder}/current")
    if not doc["passed"]:
        console.print(f"[red]FAIL[/red]: {', '.join(doc['failed'])} (margin {margin:g} points)")
        raise typer.Exit(code=1)
    if written is not None:
        console.print(f"robustness card: {written}")
