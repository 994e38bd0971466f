"""Phase 1 of ``dhat eval``: craft adversarial examples chunk by chunk, cached on disk, sharded over ranks.

Every (mode, attack, eps, chunk of ``batch_size`` test images) is attacked on the chosen device and
saved to ``OUT/cache``. Each chunk is seeded on its own, so its result does not depend on which process
makes it: under ``torchrun`` rank r takes chunks r, r + W, r + 2W, ... and the numbers equal a
one-process run with the same seed. An interrupted evaluation resumes from the chunks on disk (the
cache key holds the graph's sha256, so a reused ``--out`` never scores another artifact's examples).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from dhat_serve.contract import ALL, request_graph
from dhat_serve.runtime import ModelRuntime
from training.distributed import DistContext
from training.models.dual_head import AllOutputs, ModeView
from training.robustness.adaptive import is_system_attack
from training.robustness.settings import SANITY_ATTACK, SANITY_EPS, EvalSettings, EvaluationError
from training.robustness.suite import AttackContext, run_attack

TRANSFER_ATTACK = "pgd20"
CURVE_ATTACK = "pgd20"


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
        """Cache file stem of one chunk: mode, attack, eps, seed, position, size, the graph's sha256 and, for
        examples crafted in TF32 on CUDA, ``_tf32`` (other examples than fp32's: a reused ``--out`` keeps both)."""
        size = min(self.settings.batch_size, len(self.y) - start)
        safe = name.replace("/", "_").replace("@", "-step")
        if name.startswith("agree") and self.settings.agree_targets is not None:
            safe += f"-t{self.settings.agree_targets}"  # fewer targets, other examples
        sha = self.rt.manifest.modes[request_graph(mode)].sha256[:16]
        precision = "_tf32" if self.tf32() else ""
        return f"{mode}_{safe}_eps{eps:.6f}_seed{self.settings.seed}_{start}_{size}_{sha}{precision}"

    def tf32(self) -> bool:
        """Whether phase 1 crafts in TF32: asked for, and on CUDA (the flag means nothing to a CPU)."""
        return self.settings.attack_precision == "tf32" and self.dist.device.type == "cuda"


def crafted_on(name: str, mode: str) -> str:
    """What attack ``name``'s examples for ``mode`` are crafted against: ``mode``'s own twin, or for a system
    attack (joint, agree) the three outputs together, once (``all``), whichever mode scores them."""
    return ALL if is_system_attack(name) else mode


@contextmanager
def crafting_precision(job: Job) -> Iterator[None]:
    """TF32 convolutions and matmuls while phase 1 crafts, when asked for; the caller's settings again afterwards,
    i.e. exact fp32 for the twin's scores in phase 2 (``evaluate`` turns TF32 off for the whole run: TF32 logits
    differ by ~1e-3)."""
    if not job.tf32():
        yield
        return
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def craft(job: Job, mode: str, name: str, eps: float) -> None:
    """Phase 1: attack this rank's chunks of ``mode`` (or ``all``, the three outputs) with ``name`` at ``eps`` and
    cache them (skips cached ones)."""
    twin = (AllOutputs(job.net) if mode == ALL else ModeView(job.net, mode)).eval()
    ctx = AttackContext(
        eps=eps,
        seed=job.settings.seed,
        device=job.dist.device,
        square_queries=job.settings.square_queries,
        agree_targets=job.settings.agree_targets,
    )
    mine = job.chunks()[job.dist.rank :: job.dist.world_size]
    for start in tqdm(mine, desc=f"{mode} {name}", leave=False, disable=None):
        path = job.cache / f"{job.key(mode, name, eps, start)}.safetensors"
        if path.is_file():
            continue
        stop = start + job.settings.batch_size
        xb, yb = job.x[start:stop].to(job.dist.device), job.y[start:stop].to(job.dist.device)
        began = time.perf_counter()
        x_adv = xb if eps == 0 and name != "clean" else run_attack(name, twin, job.rt, mode, xb, yb, ctx)
        job.cache.mkdir(parents=True, exist_ok=True)
        seconds = {"seconds": f"{time.perf_counter() - began:.3f}"}  # what the chunk cost, summed by craft_seconds
        save_file({"x_adv": x_adv.detach().contiguous().cpu()}, str(path), metadata=seconds)


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


def craft_seconds(job: Job, mode: str, name: str, eps: float) -> float:
    """Wall seconds phase 1 spent crafting (mode, attack, eps) over all chunks, from each chunk's metadata (0 for
    chunks cached before the metadata existed); a system attack's are those of its one crafting on ``all``."""
    total = 0.0
    for start in job.chunks():
        with safe_open(str(job.cache / f"{job.key(mode, name, eps, start)}.safetensors"), "pt") as f:
            total += float((f.metadata() or {}).get("seconds", 0.0))
    return round(total, 1)


def curve_eps(job: Job) -> list[float]:
    """The eps values of the accuracy-vs-eps curve (multiples of the budget, capped at 1)."""
    return [min(job.eps * mult, 1.0) for mult in job.settings.curve]


def craft_all(job: Job) -> None:
    """Phase 1 for every mode: the asked attacks, the transfer attack, the curve points and the large-eps row."""
    with crafting_precision(job):
        for mode in job.settings.modes:
            for name in job.settings.attacks:
                craft(job, crafted_on(name, mode), name, job.eps)  # a system attack's second mode finds it cached
            if job.settings.transfer:
                craft(job, mode, TRANSFER_ATTACK, job.eps)
            for e in curve_eps(job):
                craft(job, mode, CURVE_ATTACK, e)
            if job.settings.sanity:
                craft(job, mode, SANITY_ATTACK, SANITY_EPS)
