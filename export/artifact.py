"""``dhat export``: one trained model -> ``main.onnx``, ``second.onnx``, ``merged.onnx``, ``manifest.json``.

A run whose second head and merger were never trained (stages 2 and 3 of 0 epochs, as the single-head
baselines, or a head given by ``--init`` alone) is a single-head model: it exports ``main.onnx`` alone, and its
manifest lists that one mode, so the service serves only ``main`` and ``dhat eval`` reports no head disagreement.

The artifact directory is written atomically (a temporary directory renamed at the end), so a failed
parity check leaves no manifest and no half artifact behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from dhat_serve import __version__
from dhat_serve.contract import GRAPH_OUTPUTS, MAIN, MERGED, MODES, SECOND, SINGLE_HEAD_GRAPHS, graph_file
from dhat_serve.manifest import MANIFEST_FILE, SCHEMA_VERSION, GraphEntry, Manifest, load_manifest, sha256_file
from export.graphs import DEFAULT_OPSET, export_graph, graph_module, initializer_names
from export.parity import cpu_graph, measure
from training.attacks import PGDConfig, pgd
from training.checkpoints import (
    WEIGHTS_FILE,
    CheckpointMeta,
    atomic_dir_write,
    is_checkpoint,
    load_checkpoint,
    read_meta,
)
from training.datasets.splits import DataSplits, first_n
from training.models.dual_head import DualHeadNet, ModeView
from training.models.registry import parameter_table
from training.recipes import Recipe
from training.run_dir import RunDir

log = logging.getLogger(__name__)

FORBIDDEN = {MAIN: ("second_head", "merger"), SECOND: ("main_head", "merger"), MERGED: ()}
"""Parts whose weights must not appear in a mode's graph: ``main.onnx`` must not carry the second head."""


class ExportError(RuntimeError):
    """An export that must not produce an artifact; the message says what to do."""


def resolve_source(source: Path) -> tuple[Path, Path | None]:
    """(checkpoint dir, run dir or None) from a run directory or a checkpoint directory."""
    source = Path(source)
    if is_checkpoint(source):
        run = RunDir(source.parent.parent)
        return source, run.path if run.is_run() else None
    if RunDir(source).is_run():
        ckpt = RunDir(source).final_checkpoint()
        if not is_checkpoint(ckpt):
            raise ExportError(
                f"{source} has no trained merger ({ckpt} is missing); run stage 3 first: "
                f"`dhat train RECIPE --out {source} --stage 3` (or --resume the whole recipe)"
            )
        return ckpt, source
    raise ExportError(f"{source} is neither a run directory (recipe.yaml) nor a checkpoint (config.json)")


def graphs_to_export(ckpt: Path, trained: dict[str, bool]) -> tuple[str, ...]:
    """The three graphs of a trained dual head, or ``main`` alone when neither the second head nor the merger was
    trained; a second head without its merger (or the reverse) is an unfinished run, refused."""
    second, merger = bool(trained.get("second_head")), bool(trained.get("merger"))
    if not trained.get("main_head"):
        raise ExportError(
            f"{ckpt} has no trained main head (stage 1 trained 0 epochs without --init); train stage 1 "
            "or give a trained head with `dhat train RECIPE --init FILE`"
        )
    if second and merger:
        return MODES
    if not second and not merger:
        log.info("%s: the second head and the merger were never trained; exporting main.onnx alone", ckpt)
        return SINGLE_HEAD_GRAPHS
    if second:
        raise ExportError(
            f"{ckpt} has no trained merger, so merged.onnx cannot be made; run stage 3 "
            f"(`dhat train RECIPE --stage 3 --out RUN`) first"
        )
    raise ExportError(f"{ckpt} has a trained merger but no trained second head; retrain stages 2 and 3")


def parity_images(
    run: tuple[Recipe, DataSplits] | None, net: DualHeadNet, shape: tuple[int, int, int], n: int
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Real validation images when the run is known, else seeded uniform noise (labels = main head's)."""
    if run is not None:
        recipe, splits = run
        x, y = first_n(splits.val, n)
        return x, y, f"{recipe.data.dataset} validation split"
    x = torch.rand((n, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = net(x, MAIN).argmax(1)
    return x, y, "uniform random images (no run directory known)"


def parity_eps(recipe: Recipe | None, meta: CheckpointMeta) -> float:
    """The budget of the PGD parity images: the run's validation eps, else the checkpoint's own record."""
    if recipe is not None:
        return recipe.validation.attack.eps
    for eps in (meta.validation_eps, meta.eps, PGDConfig.eps):
        if eps is not None:
            return float(eps)
    raise AssertionError("unreachable: PGDConfig.eps is a number")


def export_artifact(
    source: str | Path,
    out: str | Path,
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    data_dir: str | None = None,
    parity_n: int = 64,
    name: str | None = None,
) -> Manifest:
    """Export, check, hash and describe; returns the manifest written to ``out/manifest.json``."""
    ckpt, run_dir = resolve_source(Path(source))
    net, cfg, doc = load_checkpoint(ckpt)
    if not isinstance(net, DualHeadNet):
        raise ExportError(f"{ckpt} is a single-head network; export needs a dual-head checkpoint")
    graphs = graphs_to_export(ckpt, doc["trained"])
    net.eval()
    precision = "fp16" if fp16 else "fp32"
    shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
    run = RunDir(run_dir).load_data(data_dir) if run_dir is not None else None  # recipe and splits, read once
    x, y, parity_source = parity_images(run, net, shape, parity_n)
    meta = read_meta(ckpt)
    eps = parity_eps(run[0] if run else None, meta)
    torch.manual_seed(0)
    adv = pgd(ModeView(net, MAIN), x, y, PGDConfig(eps=eps, step=eps / 4, steps=10))
    entries: dict[str, GraphEntry] = {}

    def write(tmp: Path) -> None:
        for mode in graphs:
            entries[mode] = export_checked(net, mode, tmp / graph_file(mode), (x, adv), fp16, opset, parity_source)
        manifest = build_manifest(cfg, meta, ckpt, run_dir, entries, precision, name)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest.to_dict(), indent=2))

    atomic_dir_write(Path(out), write)
    return load_manifest(out)


def export_checked(
    net: DualHeadNet,
    mode: str,
    path: Path,
    images: tuple[torch.Tensor, torch.Tensor],
    fp16: bool,
    opset: int,
    parity_source: str,
) -> GraphEntry:
    """Export one mode's graph to ``path`` and prove it: no weights of a part the mode does not use, and parity with
    PyTorch on clean and PGD images (``images``: (N, C, H, W) each) within the precision's tolerance; its manifest
    entry, with the hashes, when it passes."""
    x, adv = images
    precision = "fp16" if fp16 else "fp32"
    module = graph_module(net, mode, fp16)
    side = export_graph(module, x[:2], path, mode, opset)
    inits = initializer_names(path)
    leaked = [i for i in inits if any(part in i for part in FORBIDDEN[mode])]
    if leaked:
        raise ExportError(f"{mode}.onnx holds weights of another part: {leaked[:3]}")
    graph = cpu_graph(mode, path)
    reference = graph_module(net, mode, False) if not fp16 else module
    clean, attacked = (
        measure(reference, graph, mode, x, precision),
        measure(reference, graph, mode, adv, precision),
    )
    worst = max(clean.max_abs_diff, attacked.max_abs_diff)
    if worst > clean.tolerance:
        raise ExportError(
            f"{mode}.onnx differs from PyTorch by {worst:.3g} (> {clean.tolerance:g}); no manifest written"
        )
    parity = {
        "clean": clean.to_dict(),
        "pgd": attacked.to_dict(),
        "max_abs_diff": worst,
        "tolerance": clean.tolerance,
        "source": parity_source,
    }
    external = None
    if side is not None:
        external = {"file": side.name, "sha256": sha256_file(side), "size": side.stat().st_size}
    entry = GraphEntry(
        file=path.name,
        sha256=sha256_file(path),
        size=path.stat().st_size,
        opset=opset,
        outputs=GRAPH_OUTPUTS[mode],
        parity=parity,
        external_data=external,
    )
    log.info(
        "%s.onnx: %d initialisers, parity max |diff| %.2e (clean) %.2e (PGD), argmax agreement %.3f",
        mode,
        len(inits),
        clean.max_abs_diff,
        attacked.max_abs_diff,
        clean.argmax_agreement,
    )
    return entry


def build_manifest(
    cfg: Any,
    meta: CheckpointMeta,
    ckpt: Path,
    run_dir: Path | None,
    entries: dict[str, GraphEntry],
    precision: str,
    name: str | None,
) -> Manifest:
    """The manifest of a checked export: graphs, architecture, and where the weights came from."""
    validation = {"val_clean": meta.val_clean, "val_robust": meta.val_robust, "epoch": meta.epochs_done}
    provenance = {
        "checkpoint": str(ckpt),
        "checkpoint_sha256": sha256_file(ckpt / WEIGHTS_FILE),
        "recipe": meta.recipe,
        "eps": meta.eps,
        "validation_eps": meta.validation_eps,
        "validation": {k: v for k, v in validation.items() if v is not None},
        "run_dir": str(run_dir) if run_dir else None,
        "seed": meta.seed,
        "torch_version": torch.__version__,
    }
    digest = hashlib.sha256("".join(g.sha256 for g in entries.values()).encode()).hexdigest()[:12]
    arch = {
        "arch": cfg.arch,
        "layout": cfg.layout,
        "second_arch": cfg.resolved_second_arch,
        "num_classes": cfg.num_classes,
        "parameters": parameter_table(cfg),
    }
    return Manifest(
        schema_version=SCHEMA_VERSION,
        name=name or f"dhat-{meta.recipe or cfg.arch}",
        version=digest,
        package_version=__version__,
        precision=precision,
        architecture=arch,
        class_names=cfg.names,
        input_shape=(cfg.in_channels, cfg.input_size, cfg.input_size),
        input_range=(0.0, 1.0),
        modes=entries,
        provenance=provenance,
    )


def import_to_bentoml(artifact_dir: Path, manifest: Manifest) -> str:
    """Copy the artifact into the local BentoML model store as ``dhat:<version>`` (and so ``dhat:latest``)."""
    import bentoml

    with bentoml.models.create(
        name="dhat",
        metadata={"manifest_version": manifest.version, "name": manifest.name},
        labels={"precision": manifest.precision},
    ) as model:
        for item in Path(artifact_dir).iterdir():
            shutil.copy2(item, Path(model.path) / item.name)
    return str(model.tag)
