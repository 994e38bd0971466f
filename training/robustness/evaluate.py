"""``dhat eval``: white-box attacks on the parity-checked twin, scored by ONNX Runtime on the graph.

For each mode: rebuild the PyTorch twin from the run's checkpoint, refuse to go on unless it matches the
graph on the clean batch, craft adversarial examples (twin gradients, or graph queries for Square),
then score them on both. Two phases:

1. **craft**: every (mode, attack, chunk of ``batch_size`` test images) is attacked on the chosen device
   and saved to ``OUT/cache``. Each chunk is seeded on its own, so its result does not depend on which
   process makes it: under ``torchrun`` rank r takes chunks r, r + W, r + 2W, ... and the numbers equal a
   one-process run with the same seed. An interrupted evaluation resumes from the chunks on disk (the
   cache key holds the graph's sha256, so a reused ``--out`` never scores another artifact's examples).
2. **score** (rank 0 only): read every chunk, score graph and twin, add 95 % intervals, the paired
   merged-vs-head differences, the transfer matrix, the accuracy-vs-eps curve and the head-disagreement
   table, and write one report.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from dhat_serve import __version__
from dhat_serve.contract import LOGITS, MAIN, MERGED, MODES, SECOND, parse_mode
from dhat_serve.manifest import ArtifactError, Manifest, load_manifest, sha256_file
from dhat_serve.runtime import ModelRuntime
from training.checkpoints import WEIGHTS_FILE, load_checkpoint
from training.data import first_n
from training.distributed import DistContext, setup, teardown
from training.models.dual_head import ModeView
from training.robustness.heads import head_disagreement
from training.robustness.stats import accuracy_with_ci, paired_difference, wilson
from training.robustness.suite import AttackContext, is_white_box, parse_attack, run_attack
from training.run_dir import RunDir

log = logging.getLogger(__name__)
TRANSFER_ATTACK = "pgd20"
CURVE_ATTACK = "pgd20"


class EvaluationError(RuntimeError):
    """An evaluation that must not produce numbers (tampered artifact, twin that does not match)."""


@dataclass(frozen=True)
class EvalSettings:
    """What ``dhat eval`` was asked for; checked here, where the CLI's values enter.

    ``n`` None is the whole test split; ``device`` None is CUDA when torch sees one, else CPU.
    """

    modes: tuple[str, ...] = MODES
    attacks: tuple[str, ...] = ("clean", "pgd20")
    eps: float | None = None
    n: int | None = None
    batch_size: int = 250
    seed: int = 0
    square_queries: int = 1000
    transfer: bool = True
    curve: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)  # multiples of eps for robustness.png
    data_dir: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        for m in self.modes:
            parse_mode(m)
        for a in self.attacks:
            parse_attack(a)
        if self.eps is not None and not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"--eps must be in [0, 1] (e.g. 8/255), got {self.eps}")
        if (self.n is not None and self.n < 1) or self.batch_size < 1:
            raise ValueError(f"--n and --batch-size must be >= 1, got {self.n}, {self.batch_size}")
        if self.device is not None and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"--device {self.device!r}: use cpu, cuda or cuda:N")


def resolve_device(device: str | None) -> str:
    """The torch device to attack on: ``--device``, else CUDA when visible; an impossible CUDA request says why."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvaluationError(f"--device {device}: torch sees no CUDA device here; use --device cpu")
    return device


def load_twin(run_dir: Path, manifest: Manifest) -> tuple[torch.nn.Module, Path]:
    """The run's final checkpoint, refused unless its weights are the ones the graph was exported from."""
    ckpt = RunDir(run_dir).final_checkpoint()
    weights = ckpt / WEIGHTS_FILE
    if not weights.is_file():
        raise EvaluationError(f"{run_dir}: no final checkpoint at {ckpt}; is this the run the artifact came from?")
    expected = manifest.provenance.get("checkpoint_sha256")
    if expected and sha256_file(weights) != expected:
        raise EvaluationError(f"the run's weights ({weights}) do not match the graph: the manifest was exported "
                              "from a checkpoint with another sha256; pass the --run the artifact came from")
    net, _, _ = load_checkpoint(ckpt)
    return net.eval(), ckpt


def graph_logits(rt: ModelRuntime, mode: str, x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) images -> (N, classes) logits of ``mode``'s graph, as deployed (ONNX Runtime)."""
    return rt.predict(mode, x.detach().cpu().numpy())[LOGITS]


@torch.no_grad()
def twin_logits(twin: torch.nn.Module, x: torch.Tensor, batch: int = 512) -> np.ndarray:
    """(N, C, H, W) images -> (N, classes) logits of the PyTorch twin the attacks differentiate."""
    device = next(twin.parameters()).device
    return torch.cat([twin(x[i : i + batch].to(device)) for i in range(0, len(x), batch)]).float().cpu().numpy()


def check_twin(twin: torch.nn.Module, rt: ModelRuntime, mode: str, x: torch.Tensor, tolerance: float) -> float:
    """Max |twin - graph| logit difference on clean ``x``; refuse to attack a twin that is not the graph."""
    diff = float(np.abs(twin_logits(twin, x) - graph_logits(rt, mode, x)).max())
    if diff > tolerance:
        raise EvaluationError(f"mode {mode}: the PyTorch twin differs from {rt.manifest.modes[mode].file} by "
                              f"{diff:.3g} on clean data (> {tolerance:g}); refusing to evaluate")
    return diff


@dataclass(frozen=True)
class Job:
    """Everything both phases share: data, twin, sessions, cache, and this process's place in the job."""

    x: torch.Tensor
    y: torch.Tensor
    net: torch.nn.Module
    rt: ModelRuntime
    settings: EvalSettings
    eps: float
    cache: Path
    dist: DistContext

    def chunks(self) -> list[int]:
        """Start index of every chunk of ``batch_size`` test images."""
        return list(range(0, len(self.y), self.settings.batch_size))

    def key(self, mode: str, name: str, eps: float, start: int) -> str:
        """Cache file stem of one chunk: mode, attack, eps, seed, position, size and the graph's sha256."""
        size = min(self.settings.batch_size, len(self.y) - start)
        safe = name.replace("/", "_").replace("@", "-step")
        sha = self.rt.manifest.modes[mode].sha256[:16]
        return f"{mode}_{safe}_eps{eps:.6f}_seed{self.settings.seed}_{start}_{size}_{sha}"


def craft(job: Job, mode: str, name: str, eps: float) -> None:
    """Phase 1: attack this rank's chunks of ``mode`` with ``name`` at ``eps`` and cache them (skips cached ones)."""
    twin = ModeView(job.net, mode).eval()
    ctx = AttackContext(eps=eps, seed=job.settings.seed, device=job.dist.device, square_queries=job.settings.square_queries)
    mine = job.chunks()[job.dist.rank :: job.dist.world_size]
    for start in tqdm(mine, desc=f"{mode} {name}", leave=False, disable=None):
        path = job.cache / f"{job.key(mode, name, eps, start)}.safetensors"
        if path.is_file():
            continue
        stop = start + job.settings.batch_size
        xb, yb = job.x[start:stop].to(job.dist.device), job.y[start:stop].to(job.dist.device)
        x_adv = xb if eps == 0 and name != "clean" else run_attack(name, twin, job.rt, mode, xb, yb, ctx)
        job.cache.mkdir(parents=True, exist_ok=True)
        save_file({"x_adv": x_adv.detach().contiguous().cpu()}, str(path))


def collect(job: Job, mode: str, name: str, eps: float) -> torch.Tensor:
    """Phase 2: every chunk of (mode, attack, eps) from the cache, in order: (N, C, H, W) on the CPU."""
    chunks = []
    for start in job.chunks():
        path = job.cache / f"{job.key(mode, name, eps, start)}.safetensors"
        if not path.is_file():
            raise EvaluationError(f"{path} is missing: a rank did not finish its chunks (see its log)")
        chunks.append(load_file(str(path))["x_adv"])
    x_adv = torch.cat(chunks)
    if float((x_adv - job.x).abs().max()) > eps + 1e-5 or float(x_adv.min()) < 0 or float(x_adv.max()) > 1:
        raise EvaluationError(f"{mode} {name}: adversarial examples leave the eps-ball or [0, 1]")
    return x_adv


def curve_eps(job: Job) -> list[float]:
    """The eps values of the accuracy-vs-eps curve (multiples of the budget, capped at 1)."""
    return [min(job.eps * mult, 1.0) for mult in job.settings.curve]


def craft_all(job: Job) -> None:
    """Phase 1 for every mode: the asked attacks, the transfer attack and the curve points."""
    for mode in job.settings.modes:
        for name in job.settings.attacks:
            craft(job, mode, name, job.eps)
        if job.settings.transfer:
            craft(job, mode, TRANSFER_ATTACK, job.eps)
        for e in curve_eps(job):
            craft(job, mode, CURVE_ATTACK, e)


def score(job: Job, mode: str, x_adv: torch.Tensor) -> tuple[dict[str, Any], np.ndarray]:
    """Accuracy of graph and twin on ``x_adv`` with 95 % intervals, their disagreements, and the graph's
    per-image correctness (N,) for the paired comparisons."""
    twin = ModeView(job.net, mode).eval()
    t, g = twin_logits(twin, x_adv).argmax(1), graph_logits(job.rt, mode, x_adv).argmax(1)
    yy = job.y.numpy()
    graph, twin_acc = accuracy_with_ci(g == yy), accuracy_with_ci(t == yy)
    return {"graph": graph["accuracy"], "graph_ci95": graph["ci95"], "twin": twin_acc["accuracy"],
            "twin_ci95": twin_acc["ci95"], "disagreements": int((t != g).sum())}, g == yy


def score_mode(job: Job, mode: str) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """One mode's row of the report, its per-attack correctness vectors and its adversarial examples."""
    row: dict[str, Any] = {"attacks": {}}
    correct, adversarial = {}, {}
    for name in job.settings.attacks:
        adversarial[name] = collect(job, mode, name, job.eps)
        row["attacks"][name], correct[name] = score(job, mode, adversarial[name])
        r = row["attacks"][name]
        log.info("%s %s: graph %.2f%% [%.2f, %.2f] twin %.2f%% (%d disagreements)", mode, name, 100 * r["graph"],
                 100 * r["graph_ci95"][0], 100 * r["graph_ci95"][1], 100 * r["twin"], r["disagreements"])
    if job.settings.curve:
        row["curve"] = []
        for e in curve_eps(job):
            hits = int((graph_logits(job.rt, mode, collect(job, mode, CURVE_ATTACK, e)).argmax(1) == job.y.numpy()).sum())
            row["curve"].append({"eps": e, "graph": hits / len(job.y), "ci95": list(wilson(hits, len(job.y)))})
    return row, correct, adversarial


def transfer_matrix(job: Job) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[float]]]]:
    """matrix[source][target]: graph accuracy of ``target`` on PGD-20 examples crafted on ``source``'s twin,
    and the 95 % interval of each entry."""
    acc: dict[str, dict[str, float]] = {}
    ci: dict[str, dict[str, list[float]]] = {}
    for src in job.settings.modes:
        x_adv = collect(job, src, TRANSFER_ATTACK, job.eps)
        acc[src], ci[src] = {}, {}
        for tgt in job.settings.modes:
            hits = int((graph_logits(job.rt, tgt, x_adv).argmax(1) == job.y.numpy()).sum())
            acc[src][tgt], ci[src][tgt] = hits / len(job.y), list(wilson(hits, len(job.y)))
    return acc, ci


def comparisons(correct: dict[str, dict[str, np.ndarray]], seed: int) -> dict[str, dict[str, Any]]:
    """Per attack, merged minus main and merged minus second on the same images (paired 95 % interval)."""
    out: dict[str, dict[str, Any]] = {}
    if MERGED not in correct:
        return out
    for name, merged in correct[MERGED].items():
        out[name] = {f"merged-{head}": paired_difference(merged, correct[head][name], seed=seed)
                     for head in (MAIN, SECOND) if head in correct and name in correct[head]}
    return out


def evaluate(artifact_dir: str | Path, run_dir: str | Path, settings: EvalSettings, out: str | Path) -> dict[str, Any] | None:
    """Every (mode, attack) accuracy on graph and twin, with intervals; returns the report on rank 0, else None."""
    artifact_dir, run_dir, out = Path(artifact_dir), Path(run_dir), Path(out)
    try:
        manifest = load_manifest(artifact_dir)
    except ArtifactError as exc:
        raise EvaluationError(f"refusing a tampered or incomplete artifact: {exc}") from None
    net, ckpt = load_twin(run_dir, manifest)
    device = resolve_device(settings.device)
    dist = setup(None if device == "cuda" else device)  # plain "cuda": each torchrun rank takes cuda:LOCAL_RANK
    try:
        net.to(dist.device)
        cuda = dist.device.type == "cuda"
        rt = ModelRuntime.load(artifact_dir, provider="cuda" if cuda else "cpu",
                               device_id=(dist.device.index or 0) if cuda else 0)
        recipe, splits = RunDir(run_dir).load_data(settings.data_dir)
        x, y = first_n(splits.test, settings.n or len(splits.test))
        eps = settings.eps if settings.eps is not None else recipe.validation.attack.eps
        job = Job(x, y, net, rt, settings, eps, out / "cache", dist)
        tolerance = max(1e-4, float(manifest.modes[MAIN].parity.get("tolerance", 1e-4)))
        diffs = {mode: check_twin(ModeView(net, mode).eval(), rt, mode, x, tolerance) for mode in settings.modes}
        craft_all(job)
        dist.barrier()
        if not dist.is_main:
            return None
        report = build_report(job, diffs, manifest, artifact_dir, run_dir, ckpt, recipe)
    finally:
        teardown(dist)
    from training.robustness.report import write_report

    write_report(report, out)
    return report


def build_report(job: Job, diffs: dict[str, float], manifest: Manifest, artifact_dir: Path, run_dir: Path, ckpt: Path,
                 recipe: Any) -> dict[str, Any]:  # noqa: ANN401 - a Recipe
    """Phase 2 on rank 0: score everything from the cache and assemble ``report.json``."""
    results: dict[str, Any] = {}
    correct: dict[str, dict[str, np.ndarray]] = {}
    adversarial: dict[str, dict[str, torch.Tensor]] = {}
    for mode in job.settings.modes:
        row, correct[mode], adversarial[mode] = score_mode(job, mode)
        results[mode] = {"twin_graph_max_abs_diff": diffs[mode], **row}
    transfer, transfer_ci = transfer_matrix(job) if job.settings.transfer else ({}, {})
    return {
        "artifact": {"dir": str(artifact_dir), "name": manifest.name, "version": manifest.version,
                     "hashes": {m: g.sha256 for m, g in manifest.modes.items()}},
        "run": {"dir": str(run_dir), "checkpoint": str(ckpt), "recipe": recipe.name},
        "data": {"dataset": recipe.data.dataset, "split": "test", "n": len(job.y)},
        "eps": job.eps, "seed": job.settings.seed, "attacks": list(job.settings.attacks),
        "pgd_step": "2.5 * eps / steps unless the attack names one (pgdK@STEP), uniform random start",
        "square_queries": job.settings.square_queries,
        "device": str(job.dist.device), "world_size": job.dist.world_size, "providers": job.rt.providers(),
        "results": results, "comparisons": comparisons(correct, job.settings.seed),
        "transfer": transfer, "transfer_ci95": transfer_ci,
        "head_disagreement": head_disagreement(job.rt, job.x, job.y, adversarial),
        "warnings": masking_warnings(results, transfer),
        "versions": {"dhat_serve": __version__, "torch": torch.__version__, "onnxruntime": ort.__version__,
                     "python": platform.python_version()},
    }


def masking_warnings(results: dict[str, Any], transfer: dict[str, dict[str, float]]) -> list[str]:
    """White-box robust accuracy above black-box (Square) or transfer accuracy hints at gradient masking."""
    warnings = []
    for mode, row in results.items():
        white = [v["graph"] for k, v in row["attacks"].items() if is_white_box(k)]
        if not white:
            continue
        best_white = min(white)
        if "square" in row["attacks"] and row["attacks"]["square"]["graph"] < best_white:
            warnings.append(f"{mode}: white-box accuracy {100 * best_white:.2f}% is higher than Square (black-box) "
                            f"{100 * row['attacks']['square']['graph']:.2f}%: a sign of gradient masking")
        others = [transfer[src][mode] for src in transfer if src != mode and mode in transfer[src]]
        if others and min(others) < best_white:
            warnings.append(f"{mode}: white-box accuracy {100 * best_white:.2f}% is higher than transfer accuracy "
                            f"{100 * min(others):.2f}%: a sign of gradient masking")
    return warnings
