"""The ``dhat`` commands ``train``, ``models``, ``recipes`` and ``datasets`` (``eval`` and ``compare`` live in
``training.eval_command``, ``frontier`` in ``training.frontier_command``).

Registered in the ``dhat.commands`` entry-point group, so the runtime's ``dhat`` app finds them without
importing ``training``. Torch is imported inside each command, not here: ``dhat --help`` and
``dhat serve`` stay fast, and in an environment without the ``[train]`` extra the app turns the
missing module into a message that says what to install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dhat_serve.console import console, fail
from dhat_serve.contract import MAIN, MERGED

if TYPE_CHECKING:
    from training.recipes import Recipe


def models(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    num_classes: Annotated[int, typer.Option(help="classes for the parameter counts")] = 10,
) -> None:
    """List the registered architectures with parameter counts (trunk, heads, merger, total)."""
    from training.models.merger import class_pairs, merger_features
    from training.models.registry import ModelConfig, get_arch, list_archs, parameter_table

    rows = []
    for name in list_archs():
        spec = get_arch(name)
        layouts = ["single", "symmetric"] + (["asymmetric"] if spec.default_second else [])
        for layout in layouts:
            cfg = ModelConfig(arch=name, layout=layout, num_classes=num_classes)
            rows.append(
                {
                    "arch": name,
                    "layout": layout,
                    "second_arch": cfg.resolved_second_arch if layout != "single" else None,
                    "description": spec.description,
                    "parameters": parameter_table(cfg),
                }
            )
    pairs, features = len(class_pairs(num_classes)[0]), merger_features(num_classes)
    merger_note = (
        f"merger: the paper's literal design (Fig. 4-6): {pairs:,} class pairs, a {features:,}-wide FC, "
        f"{rows[-1]['parameters']['merger']:,} parameters for {num_classes} classes"
    )
    if as_json:
        for r in rows:
            r["merger"] = {"design": "literal (paper Fig. 4-6)", "class_pairs": pairs, "fc_in_features": features}
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"architectures ({num_classes} classes)")
    for col in ("arch", "layout", "trunk", "main head", "second head", "merger", "total"):
        table.add_column(col, justify="right" if col not in ("arch", "layout") else "left")
    for r in rows:
        p = r["parameters"]
        table.add_row(
            r["arch"], r["layout"], *(f"{p[k]:,}" for k in ("trunk", "main_head", "second_head", "merger", "total"))
        )
    console.print(table)
    console.print(merger_note)


def datasets(as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False) -> None:
    """List the data sources a recipe's data.dataset can name, their file layout and where each looks now."""
    from training.data import describe_sources

    rows = describe_sources()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="data sets (data.dataset); nothing is downloaded")
    for col in ("dataset", "what", "layout under --data-dir", "looks in", "found"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["summary"], r["layout"], r["looks_in"], "yes" if r["found"] else "no")
    console.print(table)


def recipes(as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False) -> None:
    """List the built-in recipes, the paper's table row each reproduces and the numbers it reports there."""
    from training.paper import evaluation_command, paper_rows
    from training.recipes import describe_recipes

    rows = describe_recipes()
    for r in rows:
        paper = paper_rows().get(r["name"])
        r["paper"] = (
            None
            if paper is None
            else {
                "table": paper.table,
                "rows": paper.rows,
                "scaled": paper.scaled,
                "attacks": [] if paper.scaled else list(paper.attacks),
                "reported": {mode: paper.numbers(mode) for mode in paper.reported},
            }
        )
        r["evaluate"] = evaluation_command(r["name"])
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="built-in recipes (`dhat train NAME`; paper numbers in %, final model / main head)")
    for col in ("recipe", "stage methods", "paper", "attacks", "merged (paper)", "main head (paper)"):
        table.add_column(col)
    for r in rows:
        p = r["paper"]
        where = f"Table {p['table']} {p['rows']}" if p else "ours (not in the paper)"
        cells = (
            [" / ".join(f"{v:.2f}" for v in p["reported"].get(m, {}).values()) or "-" for m in (MERGED, MAIN)]
            if p
            else ["-", "-"]
        )
        table.add_row(
            r["name"], " / ".join(r["methods"]), where, ", ".join(p["attacks"]) if p and p["attacks"] else "-", *cells
        )
    console.print(table)
    console.print(
        "measure the same columns with: dhat eval ARTIFACT --run RUN --attacks LIST  (see `--json` for each "
        "recipe's command)"
    )


def print_plan(recipe: Recipe, as_json: bool) -> None:
    """``dhat train --plan``: each stage's method, attack, epochs, per-epoch lr, start checkpoint, selection."""
    from training.plan import lr_runs, recipe_plan

    plan = recipe_plan(recipe)
    if as_json:
        print(json.dumps(plan, indent=2))
        return
    table = Table(title=f"plan of {plan['recipe']} (epochs counted from 1)")
    for col in (
        "stage",
        "method",
        "beta",
        "attack eps / step / steps",
        "attack start / loss",
        "epochs",
        "learning rate per epoch",
        "starts from",
        "best by",
    ):
        table.add_column(col)
    for s in plan["stages"]:
        start = (
            (s["init"] or "scratch")
            if s["stage"] == 1
            else f"stage {s['stage'] - 1} {s['start_from']}"
            + (" (second head = copy of main)" if s["copy_main"] else "")
        )
        if s["continue_schedule"]:
            b = s["paper_best_epoch"]
            start += f"; lr: stage {s['stage'] - 1}'s schedule from its {s['start_from']} epoch in this run" + (
                f" (the paper's was {b}: epochs {b + 1}-{b + s['epochs']} shown)" if b is not None else ""
            )
        attack = f"{s['attack_start']} / {s['attack_loss']}" if s["attack_start"] else "none (clean images)"
        table.add_row(
            str(s["stage"]),
            s["method"],
            f"{s['beta']:g}",
            f"{s['eps']:.4g} / {s['step']:.4g} / {s['steps']}",
            attack,
            str(s["epochs"]),
            lr_runs(s["lr"]),
            start,
            s["select"],
        )
    console.print(table)


RecipeArg = Annotated[str, typer.Argument(help="built-in recipe name (e.g. digits) or a YAML file")]
Overrides = Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. stage1.epochs=2")]
RunOut = Annotated[Path | None, typer.Option("--out", help="run directory (default runs/RECIPE)")]
OnlyStage = Annotated[int | None, typer.Option("--stage", help="run only this stage (1, 2 or 3)")]
Resume = Annotated[bool, typer.Option("--resume", help="continue from the last complete epoch")]
Init = Annotated[Path | None, typer.Option("--init", help="stage 1: start from this single-head checkpoint")]
FinetuneInit = Annotated[
    bool,
    typer.Option(
        "--finetune-init",
        help="with --init: train stage 1 for the recipe's epochs from it (default: use it as is, 0 epochs)",
    ),
]
CopyMain = Annotated[bool, typer.Option("--copy-main", help="stage 2: second head starts as a copy of the main head")]
Stage1From = Annotated[
    Path | None,
    typer.Option(
        "--stage1-from",
        help="reuse this run's complete stage 1 (checked: same seed, network, data and stage-1 settings)",
    ),
]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="folder holding the data set's files (see `dhat datasets`)")
]
Device = Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: CUDA if visible)")]
Plan = Annotated[bool, typer.Option("--plan", help="print what each stage will do (no data, no training)")]
PlanJson = Annotated[bool, typer.Option("--json", help="with --plan: print the plan as JSON")]
"""``dhat train``'s arguments and options, declared once here so the command reads as its logic."""


def train(
    recipe: RecipeArg,
    overrides: Overrides = None,
    out: RunOut = None,
    stage: OnlyStage = None,
    resume: Resume = False,
    init: Init = None,
    finetune_init: FinetuneInit = False,
    copy_main: CopyMain = False,
    stage1_from: Stage1From = None,
    data_dir: DataDir = None,
    device: Device = None,
    plan: Plan = False,
    as_json: PlanJson = False,
) -> None:
    """Train a DH-AT model: stage 1 (main head), 2 (second head), 3 (merger) of RECIPE."""
    if as_json and not plan:
        fail("--json goes with --plan (training itself writes metrics.jsonl)")
    from training.recipes import RecipeError, load_recipe, with_flags

    if init is not None and not init.is_file():
        fail(f"--init {init}: no such file (a .safetensors or .pt single-head checkpoint)")
    overrides = list(overrides or [])
    # --init is used as is unless --finetune-init or an explicit stage1.epochs=N asks for training from it
    finetune = finetune_init or any(o.split("=", 1)[0].strip() == "stage1.epochs" for o in overrides)
    try:
        resolved = with_flags(
            load_recipe(recipe, overrides),
            init=None if init is None else str(init),
            finetune_init=finetune,
            copy_main=copy_main,
            data_dir=None if data_dir is None else str(data_dir),
        )
    except RecipeError as exc:
        fail(str(exc))
    if plan:
        print_plan(resolved, as_json)
        return
    run_dir = out or Path("runs") / resolved.name
    from training.datasets.splits import DataError
    from training.pipeline import train_recipe
    from training.stages import StageError

    stages = (stage,) if stage else (1, 2, 3)
    try:
        if stage1_from is not None:
            from training.stage_reuse import reuse_stage1

            reuse_stage1(resolved, run_dir, stage1_from)
            stages = tuple(n for n in stages if n > 1)
        train_recipe(resolved, run_dir, stages=stages, resume=resume, device=device)
    except (StageError, FileNotFoundError, RecipeError, DataError) as exc:
        fail(str(exc))
    console.print(f"run directory: {run_dir}")
