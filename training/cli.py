"""The ``dhat`` commands ``training`` owns: ``train``, ``models``, ``recipes`` and ``eval``.

Registered in the ``dhat.commands`` entry-point group, so the runtime's ``dhat`` app finds them without
importing ``training``. Torch is imported inside each command, not here: ``dhat --help`` and
``dhat serve`` stay fast, and in an environment without the ``[train]`` extra the app turns the
missing module into a message that says what to install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from dhat_serve.console import console, fail
from dhat_serve.contract import MODES


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


def recipes(as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False) -> None:
    """List the built-in recipes with what each reproduces (the comment at the top of its YAML)."""
    from training.recipes import describe_recipes

    rows = describe_recipes()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="built-in recipes (`dhat train NAME`)")
    for col in ("recipe", "dataset", "arch", "stage methods", "reproduces"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["dataset"], r["arch"], " / ".join(r["methods"]), r["description"])
    console.print(table)


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
            fail(f"--init {init}: no such file (a .safetensors or .pt single-head checkpoint)")
        extra.append(f"stage1.init={init}")
    if copy_main:
        extra.append("stage2.copy_main=true")
    if data_dir is not None:
        extra.append(f"data.data_dir={data_dir}")
    try:
        resolved = load_recipe(recipe, extra)
    except RecipeError as exc:
        fail(str(exc))
    run_dir = out or Path("runs") / resolved.name
    from training.pipeline import train_recipe

    try:
        train_recipe(resolved, run_dir, stages=(stage,) if stage else (1, 2, 3), resume=resume, device=device)
    except (StageError, FileNotFoundError, RecipeError) as exc:
        fail(str(exc))
    console.print(f"run directory: {run_dir}")


def eval_cmd(
    artifact: Annotated[Path, typer.Argument(help="artifact directory from `dhat export`")],
    run: Annotated[Path, typer.Option("--run", help="the run directory the artifact was exported from")],
    modes: Annotated[str, typer.Option(help="comma-separated modes")] = ",".join(MODES),
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
        settings = EvalSettings(modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
                                attacks=tuple(a.strip() for a in attacks.split(",") if a.strip()), eps=budget, n=n,
                                batch_size=batch_size, seed=seed, square_queries=square_queries,
                                transfer=not no_transfer, curve=() if no_curve else EvalSettings.curve, data_dir=data_dir)
    except ValueError as exc:  # RecipeError is a ValueError
        fail(str(exc))
    if not run.is_dir():
        fail(f"--run {run}: no such run directory")
    report_dir = out or artifact / "report"
    try:
        report = evaluate(artifact, run, settings, report_dir)
    except (EvaluationError, FileNotFoundError) as exc:
        fail(str(exc))
    console.print(markdown(report))
    plot = ", robustness.png" if (report_dir / "robustness.png").is_file() else ""
    console.print(f"report: {report_dir}/report.md, report.json{plot}")
