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
    for noisy in ("onnxscript", "onnx_ir", "matplotlib", "torch.onnx", "httpx"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


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


@app.command()
def train(
    recipe: Annotated[str, typer.Argument(help="built-in recipe name (e.g. digits) or a YAML file")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. stage1.epochs=2")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="run directory (default runs/RECIPE)")] = None,
    stage: Annotated[Optional[int], typer.Option("--stage", help="run only this stage (1, 2 or 3)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last complete epoch")] = False,
    init: Annotated[Optional[Path], typer.Option("--init", help="stage 1: start from this single-head checkpoint")] = None,
    copy_main: Annotated[bool, typer.Option("--copy-main", help="stage 2: second head starts as a copy of the main head")] = False,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="folder holding the CIFAR data (torchvision layout)")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda or cuda:N (default: CUDA if visible)")] = None,
) -> None:
    """Train a DH-AT model: stage 1 (main head), 2 (second head), 3 (merger) of RECIPE."""
    from training.recipes import RecipeError, load_recipe
    from training.stages import StageError

    extra = list(overrides or [])
    if init is not None:
        if not init.is_file():
            _fail(f"--init {init}: no such file (a .safetensors or .pt single-head checkpoint)")
        extra.append(f"stage1.init={init}")
    if copy_main:
        extra.append("stage2.copy_main=true")
    if data_dir is not None:
        extra.append(f"data.data_dir={data_dir}")
    try:
        resolved = load_recipe(recipe, extra)
    except RecipeError as exc:
        _fail(str(exc))
        return
    run_dir = out or Path("runs") / resolved.name
    from training.pipeline import train_recipe

    try:
        train_recipe(resolved, run_dir, stages=(stage,) if stage else (1, 2, 3), resume=resume, device=device)
    except (StageError, FileNotFoundError, RecipeError) as exc:
        _fail(str(exc))
    console.print(f"run directory: {run_dir}")


@app.command("export")
def export_cmd(
    source: Annotated[Path, typer.Argument(help="run directory (uses stage3/best) or a checkpoint directory")],
    out: Annotated[Path, typer.Option("--out", help="artifact directory to write")],
    opset: Annotated[int, typer.Option(help="ONNX opset")] = 18,
    fp16: Annotated[bool, typer.Option("--fp16", help="half-precision weights (float32 in and out)")] = False,
    data_dir: Annotated[Optional[str], typer.Option("--data-dir", help="CIFAR folder, if it moved since training")] = None,
    to_bentoml: Annotated[bool, typer.Option("--to-bentoml", help="also import into the BentoML model store as dhat")] = False,
) -> None:
    """Export main.onnx, second.onnx, merged.onnx and manifest.json, each checked against PyTorch."""
    if not source.exists():
        _fail(f"{source}: no such run or checkpoint directory")
    from export.artifact import ExportError, export_artifact, import_to_bentoml
    from training.checkpoints import CheckpointError

    try:
        manifest = export_artifact(source, out, opset=opset, fp16=fp16, data_dir=data_dir)
    except (ExportError, CheckpointError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    table = Table(title=f"{manifest.name} {manifest.version} ({manifest.precision})")
    for col in ("mode", "file", "size", "max |torch - ORT|", "argmax agreement"):
        table.add_column(col)
    for mode, g in manifest.modes.items():
        table.add_row(mode, g.file, f"{g.size / 1e6:.2f} MB", f"{g.parity['max_abs_diff']:.2e}",
                      f"{g.parity['clean']['argmax_agreement']:.3f}")
    console.print(table)
    if to_bentoml:
        console.print(f"BentoML model store: {import_to_bentoml(out, manifest)}")
    console.print(f"artifact: {out}")


@app.command("eval")
def eval_cmd(
    artifact: Annotated[Path, typer.Argument(help="artifact directory from `dhat export`")],
    run: Annotated[Path, typer.Option("--run", help="the run directory the artifact was exported from")],
    modes: Annotated[str, typer.Option(help="comma-separated modes")] = "main,second,merged",
    attacks: Annotated[str, typer.Option(help="comma-separated: clean, pgdK[xR], apgd-ce, apgd-dlr-t, autoattack, square")] = "clean,pgd20",
    eps: Annotated[Optional[str], typer.Option(help="L-inf budget, e.g. 8/255 (default: the run's validation eps)")] = None,
    n: Annotated[int, typer.Option(help="test images to evaluate")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="images per attack batch (and per cached chunk)")] = 250,
    seed: Annotated[int, typer.Option(help="attack seed")] = 0,
    square_queries: Annotated[int, typer.Option("--square-queries", help="queries of the Square attack")] = 1000,
    no_transfer: Annotated[bool, typer.Option("--no-transfer", help="skip the transfer matrix")] = False,
    no_curve: Annotated[bool, typer.Option("--no-curve", help="skip the accuracy-vs-eps curve")] = False,
    data_dir: Annotated[Optional[str], typer.Option("--data-dir", help="CIFAR folder, if it moved since training")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="report directory (default ARTIFACT/report)")] = None,
) -> None:
    """Evaluate robustness of the exported graphs (attacks on the parity-checked twin, scored by ORT)."""
    from training.recipes import RecipeError, parse_number
    from training.robustness.evaluate import EvalSettings, EvaluationError, evaluate
    from training.robustness.report import markdown

    try:
        budget = None if eps is None else parse_number(eps, "--eps")
    except RecipeError as exc:
        _fail(str(exc))
        return
    try:
        settings = EvalSettings(modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
                                attacks=tuple(a.strip() for a in attacks.split(",") if a.strip()), eps=budget, n=n,
                                batch_size=batch_size, seed=seed, square_queries=square_queries,
                                transfer=not no_transfer, curve=() if no_curve else EvalSettings.curve, data_dir=data_dir)
    except ValueError as exc:
        _fail(str(exc))
        return
    if not run.is_dir():
        _fail(f"--run {run}: no such run directory")
    report_dir = out or artifact / "report"
    try:
        report = evaluate(artifact, run, settings, report_dir)
    except (EvaluationError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    console.print(markdown(report))
    plot = ", robustness.png" if (report_dir / "robustness.png").is_file() else ""
    console.print(f"report: {report_dir}/report.md, report.json{plot}")


@app.command()
def serve(
    artifact: Annotated[Optional[Path], typer.Argument(help="artifact directory (default: $DHAT_ARTIFACT, else BentoML store dhat:latest)")] = None,
    port: Annotated[int, typer.Option(help="HTTP port")] = 3000,
    host: Annotated[str, typer.Option(help="interface to listen on (0.0.0.0 exposes it to the network)")] = "127.0.0.1",
    provider: Annotated[str, typer.Option(help="auto (CUDA if a GPU is visible), cpu or cuda")] = "auto",
) -> None:
    """Serve an artifact over HTTP with BentoML (POST /classify, POST /predict, GET /info)."""
    import os

    from dhat_serve.manifest import ArtifactError, load_manifest

    if provider not in ("auto", "cpu", "cuda"):
        _fail(f"--provider {provider!r}: use auto, cpu or cuda")
    env = dict(os.environ, DHAT_PROVIDER=provider)
    if artifact is not None:
        try:
            load_manifest(artifact)  # refuse a missing file or a hash mismatch before starting anything
        except ArtifactError as exc:
            _fail(f"{exc}")
        env["DHAT_ARTIFACT"] = str(artifact.resolve())
    working_dir = str(Path(__file__).resolve().parent.parent)
    cmd = [sys.executable, "-m", "bentoml", "serve", "dhat_serve.service:DHAT", "--host", host, "--port", str(port),
           "--working-dir", working_dir]
    console.print(f"serving {env.get('DHAT_ARTIFACT', 'dhat:latest')} on http://{host}:{port}")
    sys.stdout.flush()
    os.execvpe(sys.executable, cmd, env)


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover - `python -m dhat_serve.cli` (torchrun -m)
    app()
