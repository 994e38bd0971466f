"""``dhat eval``: white-box attacks on the parity-checked twin, scored by ONNX Runtime on the graph.

The orchestration only; each idea has its module:

- ``settings``: what was asked for (``EvalSettings``) and the refusal (``EvaluationError``);
- ``twin``: the PyTorch twin and the graph's logits, and the check that they match;
- ``cache``: phase 1, crafting adversarial examples in cached, seeded chunks, sharded over ranks;
- ``scoring``, ``stats``, ``heads``: phase 2, accuracies with intervals, paired comparisons, transfer,
  head disagreement;
- ``report``: assembling and writing ``report.md`` / ``report.json`` / ``robustness.png``.

The artifact is verified once (``ModelRuntime.load`` checks every hash); the twin is refused unless it
is the checkpoint the graph came from and matches it on clean images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dhat_serve.contract import MAIN
from dhat_serve.manifest import ArtifactError
from dhat_serve.runtime import ModelRuntime
from training.datasets.splits import first_n
from training.distributed import DistContext, setup, teardown
from training.models.dual_head import ModeView
from training.robustness.cache import Job, craft_all
from training.robustness.report import build_report, write_report
from training.robustness.settings import EvalSettings, EvaluationError, for_artifact
from training.robustness.twin import check_twin, load_twin, resolve_device
from training.run_dir import RunDir

__all__ = ["EvalSettings", "EvaluationError", "evaluate"]


def open_graphs(artifact_dir: Path, dist: DistContext) -> ModelRuntime:
    """The artifact, verified once, on this rank's device (CUDA provider on ``cuda:N`` in full fp32, TF32 off,
    as the twin runs; else CPU)."""
    cuda = dist.device.type == "cuda"
    try:
        return ModelRuntime.load(
            artifact_dir,
            provider="cuda" if cuda else "cpu",
            device_id=(dist.device.index or 0) if cuda else 0,
            exact_fp32=True,
        )
    except ArtifactError as exc:
        raise EvaluationError(f"refusing a tampered or incomplete artifact: {exc}") from None


def evaluate(
    artifact_dir: str | Path, run_dir: str | Path, settings: EvalSettings, out: str | Path
) -> dict[str, Any] | None:
    """Every (mode, attack) accuracy on graph and twin, with intervals; returns the report on rank 0, else None."""
    artifact_dir, run_dir, out = Path(artifact_dir), Path(run_dir), Path(out)
    device = resolve_device(settings.device)
    dist = setup(None if device == "cuda" else device)  # plain "cuda": each torchrun rank takes cuda:LOCAL_RANK
    if dist.device.type == "cuda":  # the twin must equal the fp32 graph: TF32 convolutions differ by ~1e-3
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        rt = open_graphs(artifact_dir, dist)
        settings = for_artifact(settings, tuple(rt.manifest.modes))
        net, ckpt = load_twin(run_dir, rt.manifest)
        net.to(dist.device)
        recipe, splits = RunDir(run_dir).load_data(settings.data_dir)
        x, y = first_n(splits.test, settings.n or len(splits.test))
        eps = settings.eps if settings.eps is not None else recipe.validation.attack.eps
        job = Job(x, y, net, rt, settings, eps, out / "cache", dist)
        tolerance = max(1e-4, float(rt.manifest.modes[MAIN].parity.get("tolerance", 1e-4)))
        diffs = {mode: check_twin(ModeView(net, mode).eval(), rt, mode, x, tolerance) for mode in settings.modes}
        craft_all(job)
        dist.barrier()
        if not dist.is_main:
            return None
        report = build_report(job, diffs, rt.manifest, artifact_dir, run_dir, ckpt, recipe)
    finally:
        teardown(dist)
    write_report(report, out)
    return report
