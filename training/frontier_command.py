"""``dhat frontier REPORT_OR_DIR... --out DIR``: the accuracy-robustness frontier of every model and mode the reports
measure (``training.robustness.frontier``), without an artifact: ``dhat frontier experiments --out DIR`` works on a
fresh clone. Registered in the ``dhat.commands`` entry-point group, as ``training.cli``'s commands are."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dhat_serve.console import console, fail


def frontier(
    paths: Annotated[
        list[Path], typer.Argument(help="eval reports (report.json) or folders searched for *report.json")
    ],
    out: Annotated[Path, typer.Option("--out", help="folder for frontier.png, frontier.md and frontier.json")],
    pair: Annotated[
        list[str] | None,
        typer.Option(
            "--pair",
            help="two single models served side by side, as one deployment: MODEL_A+MODEL_B (recipe names); repeatable",
        ),
    ] = None,
) -> None:
    """Clean against robust accuracy for every model:mode, the Pareto front, and what each deployment's switch buys."""
    from training.robustness.frontier import FrontierError
    from training.robustness.frontier_report import write_frontier
    from training.robustness.frontier_verdict import closing_sentence

    try:
        doc = write_frontier(paths, out, tuple(pair or ()))
    except FrontierError as e:
        fail(str(e))
    for panel in doc["panels"]:
        console.print(
            f"{panel['dataset']} eps {panel['eps']:g}: {len(panel['points'])} points, front: "
            f"{', '.join(panel['front'])}"
        )
        if panel["verdict"]["designs"] and panel["verdict"]["alternatives"]:
            console.print(closing_sentence(panel["verdict"]).replace("**", ""), markup=False)
    console.print(f"wrote {out / 'frontier.png'}, frontier.md and frontier.json")
