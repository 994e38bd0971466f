"""What every ``dhat`` command shares: one rich console and one way to fail.

Torch-free, so each package's commands (``training/cli.py``, ``export/cli.py``) print and fail the same
way as the runtime's own without the runtime importing them.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console(width=None if sys.stdout.isatty() else 160)
"""Rich output for tables and messages (160 columns when piped, so logs and CI keep whole rows)."""

NOISY_LOGGERS = ("onnxscript", "onnx_ir", "matplotlib", "torch.onnx", "httpx")


def setup_logging(verbose: bool = False) -> None:
    """INFO (or DEBUG with ``--verbose``) for our loggers; the exporter's and plotting's chatter at WARNING."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` and exit with status 2: a usage error, never a traceback."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)  # "[train]" is text, not markup
    raise typer.Exit(code=2)
