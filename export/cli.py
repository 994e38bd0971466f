"""The ``dhat export`` command, registered in the ``dhat.commands`` entry-point group.

Torch is imported inside the command, so listing commands stays fast and a runtime-only install gets
a message naming the extra to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dhat_serve.console import console, fail


def export_cmd(
    source: Annotated[
        Path,
        typer.Argument(
            help="run directory (uses stage3/best) or a checkpoint directory; or, with --to-bentoml and no --out, an "
            "artifact directory to import as it is (with its card.json)"
        ),
    ],
    out: Annotated[Path | None, typer.Option("--out", help="artifact directory to write")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset")] = 18,
    fp16: Annotated[bool, typer.Option("--fp16", help="half-precision weights (float32 in and out)")] = False,
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="the data set's folder, if it moved since training")
    ] = None,
    to_bentoml: Annotated[
        bool, typer.Option("--to-bentoml", help="also import into the BentoML model store as dhat")
    ] = False,
) -> None:
    """Export main.onnx, second.onnx, merged.onnx and manifest.json, each checked against PyTorch."""
    if not source.exists():
        fail(f"{source}: no such run or checkpoint directory")
    from export.artifact import ExportError, export_artifact, import_to_bentoml

    if out is None:
        if not to_bentoml:
            fail("--out DIR is required to export (or give an artifact directory with --to-bentoml to import it)")
        import_checked(source)
        return
    from training.checkpoints import CheckpointError
    from training.datasets.splits import DataError

    try:
        manifest = export_artifact(source, out, opset=opset, fp16=fp16, data_dir=data_dir)
    except (ExportError, CheckpointError, FileNotFoundError, DataError) as exc:
        fail(str(exc))
    table = Table(title=f"{manifest.name} {manifest.version} ({manifest.precision})")
    for col in ("mode", "file", "size", "max |torch - ORT|", "argmax agreement"):
        table.add_column(col)
    for mode, g in manifest.modes.items():
        table.add_row(
            mode,
            g.file,
            f"{g.size / 1e6:.2f} MB",
            f"{g.parity['max_abs_diff']:.2e}",
            f"{g.parity['clean']['argmax_agreement']:.3f}",
        )
    console.print(table)
    if to_bentoml:
        console.print(f"BentoML model store: {import_to_bentoml(out, manifest)}")
    console.print(f"artifact: {out}")


def import_checked(artifact: Path) -> None:
    """Import an exported artifact into the BentoML model store as it is, after checking every graph's hash and its
    robustness card: what `dhat eval --card` or `dhat gate --card` wrote travels with it (a re-export would drop it)."""
    from dhat_serve.card import CARD_FILE, load_card
    from dhat_serve.manifest import ArtifactError, load_manifest
    from export.artifact import import_to_bentoml

    try:
        manifest = load_manifest(artifact)
        card = load_card(artifact, manifest)
    except ArtifactError as exc:
        fail(str(exc))
    tag = import_to_bentoml(artifact, manifest)
    console.print(f"BentoML model store: {tag} ({'with' if card else 'without'} {CARD_FILE})")
