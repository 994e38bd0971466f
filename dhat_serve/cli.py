"""The ``dhat`` command line.

Torch-free at import: ``train``, ``export``, ``eval`` and ``models`` import ``training`` / ``export``
inside the command, so ``dhat serve`` runs in the serving image that has no torch.
"""

from __future__ import annotations

import json
import sys
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Dual Head Adversarial Training: train, export, evaluate and serve.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 160)


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False) -> None:
    """Dual Head Adversarial Training: train, export, evaluate and serve."""
    _setup_logging(verbose)


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    num_classes: Annotated[int, typer.Option(help="classes for the parameter counts")] = 10,
) -> None:
    """List the registered architectures with parameter counts (trunk, heads, merger, total)."""
    from training.models.registry import ModelConfig, get_arch, list_archs, parameter_table

    rows = []
    for name in list_archs():
        spec = get_arch(name)
        layouts = ["single", "symmetric"] + (["asymmetric"] if spec.default_second else [])
        for layout in layouts:
            cfg = ModelConfig(arch=name, layout=layout, num_classes=num_classes)
            rows.append({"arch": name, "layout": layout, "second_arch": cfg.resolved_second_arch if layout != "single" else None,
                         "description": spec.description, "parameters": parameter_table(cfg)})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"architectures ({num_classes} classes)")
    for col in ("arch", "layout", "trunk", "main head", "second head", "merger", "total"):
        table.add_column(col, justify="right" if col not in ("arch", "layout") else "left")
    for r in rows:
        p = r["parameters"]
        table.add_row(r["arch"], r["layout"], *(f"{p[k]:,}" for k in ("trunk", "main_head", "second_head", "merger", "total")))
    console.print(table)


def main() -> None:  # pragma: no cover - console script entry
    app()
