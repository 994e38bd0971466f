"""``dhat eval``: white-box attacks on the parity-checked twin, scored by ONNX Runtime on the graph.

For each mode: rebuild the PyTorch twin from the run's checkpoint, refuse to go on unless it matches the
graph on the clean batch, craft adversarial examples (twin gradients, or graph queries for Square),
then score them on both. Adversarial examples are cached per (mode, attack, chunk), so an interrupted
evaluation resumes where it stopped. (pyautoattack's own ``state_path`` restores robust flags but not the
earlier adversarial images, which the graph needs to score, hence the chunk cache.)
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
from dhat_serve.manifest import ArtifactError, Manifest, load_manifest, sha256_file
from dhat_serve.contract import MAIN, MODES, parse_mode
from dhat_serve.runtime import ModelRuntime
from training.attacks import pgd, pgd_schedule
from training.checkpoints import load_checkpoint
from training.data import first_n
from training.models.dual_head import ModeView
from training.robustness.suite import AttackContext, is_white_box, parse_attack, run_attack
from training.run_dir import WEIGHTS_FILE, RunDir

log = logging.getLogger(__name__)


class EvaluationError(RuntimeError):
    """An evaluation that must not produce numbers (tampered artifact, twin that does not match)."""


@dataclass(frozen=True)
class EvalSettings:
    """What ``dhat eval`` was asked for; checked here, where the CLI's values enter."""

    modes: tuple[str, ...] = MODES
    attacks: tuple[str, ...] = ("clean", "pgd20")
    eps: float | None = None
    n: int = 1000
    batch_size: int = 250
    seed: int = 0
    square_queries: int = 1000
    transfer: bool = True
    curve: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)  # multiples of eps for robustness.png
    data_dir: str | None = None

    def __post_init__(self) -> None:
        for m in self.modes:
            parse_mode(m)
        for a in self.attacks:
            parse_attack(a)
        if self.eps is not None and not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"--eps must be in [0, 1] (e.g. 8/255), got {self.eps}")
        if self.n < 1 or self.batch_size < 1:
            raise ValueError(f"--n and --batch-size must be >= 1, got {self.n}, {self.batch_size}")


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


def graph_logits(rt: ModelRuntime, mode: str, x: torch.Tensor, batch: int = 512) -> np.ndarray:
    """(N, C, H, W) images -> (N, classes) logits of ``mode``'s graph, as deployed (ONNX Runtime)."""
    arr = x.detach().cpu().numpy().astype(np.float32)
    return np.concatenate([rt.run(mode, arr[i : i + batch]) for i in range(0, len(arr), batch)])


@torch.no_grad()
def twin_logits(twin: torch.nn.Module, x: torch.Tensor, batch: int = 512) -> np.ndarray:
    """(N, C, H, W) images -> (N, classes) logits of the PyTorch twin the attacks differentiate."""
    return torch.cat([twin(x[i : i + batch]) for i in range(0, len(x), batch)]).float().cpu().numpy()


def check_twin(twin: torch.nn.Module, rt: ModelRuntime, mode: str, x: torch.Tensor, tolerance: float) -> float:
    """Max |twin - graph| logit difference on clean ``x``; refuse to attack a twin that is not the graph."""
    diff = float(np.abs(twin_logits(twin, x) - graph_logits(rt, mode, x)).max())
    if diff > tolerance:
        raise EvaluationError(f"mode {mode}: the PyTorch twin differs from {rt.manifest.modes[mode].file} by "
                              f"{diff:.3g} on clean data (> {tolerance:g}); refusing to evaluate")
    return diff


def _cached(cache: Path, key: str, make: Any) -> torch.Tensor:  # noqa: ANN401
    path = cache / f"{key}.safetensors"
    if path.is_file():
        return load_file(str(path))["x_adv"]
    x_adv = make()
    cache.mkdir(parents=True, exist_ok=True)
    save_file({"x_adv": x_adv.contiguous().cpu()}, str(path))
    return x_adv


def attack_mode(name: str, mode: str, twin: torch.nn.Module, rt: ModelRuntime, x: torch.Tensor, y: torch.Tensor,
                settings: EvalSettings, eps: float, cache: Path) -> torch.Tensor:
    """Adversarial (N, C, H, W) images of attack ``name`` against ``mode``, chunk by chunk, cached per chunk."""
    ctx = AttackContext(eps=eps, seed=settings.seed, device=torch.device("cpu"), square_queries=settings.square_queries)
    chunks = []
    starts = range(0, len(y), settings.batch_size)
    for i in tqdm(starts, desc=f"{mode} {name}", leave=False, disable=None):
        xb, yb = x[i : i + settings.batch_size], y[i : i + settings.batch_size]
        key = f"{mode}_{name}_eps{eps:.6f}_seed{settings.seed}_{i}_{len(yb)}"
        chunks.append(_cached(cache, key, lambda: run_attack(name, twin, rt.sessions[mode], xb, yb, ctx)))
    return torch.cat(chunks)


def score(twin: torch.nn.Module, rt: ModelRuntime, mode: str, x_adv: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Accuracy of graph and twin on ``x_adv`` and how often they disagree (should be 0)."""
    t, g = twin_logits(twin, x_adv).argmax(1), graph_logits(rt, mode, x_adv).argmax(1)
    yy = y.numpy()
    return {"graph": float((g == yy).mean()), "twin": float((t == yy).mean()), "disagreements": int((t != g).sum())}


def evaluate(artifact_dir: str | Path, run_dir: str | Path, settings: EvalSettings, out: str | Path) -> dict[str, Any]:
    """Every (mode, attack) accuracy on graph and twin, transfer matrix, accuracy-vs-eps curves."""
    artifact_dir, run_dir, out = Path(artifact_dir), Path(run_dir), Path(out)
    try:
        manifest = load_manifest(artifact_dir)
    except ArtifactError as exc:
        raise EvaluationError(f"refusing a tampered or incomplete artifact: {exc}") from None
    net, ckpt = load_twin(run_dir, manifest)
    rt = ModelRuntime.load(artifact_dir, provider="cpu")
    recipe, splits = RunDir(run_dir).load_data(settings.data_dir)
    d = recipe.data
    x, y = first_n(splits.test, settings.n)
    eps = settings.eps if settings.eps is not None else recipe.validation.attack.eps
    tolerance = max(1e-4, float(manifest.modes[MAIN].parity.get("tolerance", 1e-4)))
    cache = out / "cache"
    results: dict[str, Any] = {}
    adversarial: dict[str, torch.Tensor] = {}
    for mode in settings.modes:
        twin = ModeView(net, mode).eval()
        diff = check_twin(twin, rt, mode, x, tolerance)
        row: dict[str, Any] = {"twin_graph_max_abs_diff": diff, "attacks": {}}
        for name in settings.attacks:
            x_adv = attack_mode(name, mode, twin, rt, x, y, settings, eps, cache)
            assert float((x_adv - x).abs().max()) <= eps + 1e-5 and 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
            row["attacks"][name] = score(twin, rt, mode, x_adv, y)
            log.info("%s %s: graph %.2f%% twin %.2f%% (%d disagreements)", mode, name,
                     100 * row["attacks"][name]["graph"], 100 * row["attacks"][name]["twin"],
                     row["attacks"][name]["disagreements"])
        if settings.transfer:
            adversarial[mode] = attack_mode("pgd20", mode, twin, rt, x, y, settings, eps, cache)
        if settings.curve:
            row["curve"] = robustness_curve(twin, rt, mode, x, y, eps, settings)
        results[mode] = row
    transfer = transfer_matrix(rt, adversarial, y) if settings.transfer else {}
    report = {
        "artifact": {"dir": str(artifact_dir), "name": manifest.name, "version": manifest.version,
                     "hashes": {m: g.sha256 for m, g in manifest.modes.items()}},
        "run": {"dir": str(run_dir), "checkpoint": str(ckpt), "recipe": recipe.name},
        "data": {"dataset": d.dataset, "split": "test", "n": len(y)},
        "eps": eps, "seed": settings.seed, "attacks": list(settings.attacks),
        "pgd_step": "2.5 * eps / steps, uniform random start", "square_queries": settings.square_queries,
        "results": results, "transfer": transfer,
        "warnings": masking_warnings(results, transfer),
        "versions": {"dhat_serve": __version__, "torch": torch.__version__, "onnxruntime": ort.__version__,
                     "python": platform.python_version()},
    }
    from training.robustness.report import write_report

    write_report(report, out)
    return report


def robustness_curve(twin: torch.nn.Module, rt: ModelRuntime, mode: str, x: torch.Tensor, y: torch.Tensor, eps: float,
                     settings: EvalSettings) -> list[dict[str, float]]:
    """Graph accuracy under PGD-20 at multiples of eps (the points of robustness.png)."""
    points = []
    for mult in settings.curve:
        e = eps * mult
        torch.manual_seed(settings.seed)
        if e == 0:
            x_adv = x
        else:
            cfg = pgd_schedule(min(e, 1.0), steps=20)
            x_adv = torch.cat([pgd(twin, x[i : i + settings.batch_size], y[i : i + settings.batch_size], cfg)
                               for i in range(0, len(y), settings.batch_size)])
        points.append({"eps": e, "graph": float((graph_logits(rt, mode, x_adv).argmax(1) == y.numpy()).mean())})
    return points


def transfer_matrix(rt: ModelRuntime, adversarial: dict[str, torch.Tensor], y: torch.Tensor) -> dict[str, dict[str, float]]:
    """matrix[source][target]: graph accuracy of ``target`` on PGD-20 examples crafted on ``source``'s twin."""
    return {src: {tgt: float((graph_logits(rt, tgt, x_adv).argmax(1) == y.numpy()).mean()) for tgt in adversarial}
            for src, x_adv in adversarial.items()}


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
