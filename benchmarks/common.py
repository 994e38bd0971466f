"""Shared helpers: side-by-side timing (interleaved repeats, median) and result files."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).parent / "out"


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, the functions run in turn within each repeat (same machine state)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def save(name: str, result: dict) -> Path:
    OUT.mkdir(exist_ok=True)
    result = {
        **result,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor(),
            "cpus": __import__("os").cpu_count(),
        },
    }
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return path


def random_artifact(arch: str, out: Path, in_channels: int = 3, size: int = 32, fp16: bool = False) -> Path:
    """A randomly initialised dual-head network of ``arch``, exported (weights do not change speed)."""
    from export.artifact import export_artifact
    from training.checkpoints import CheckpointMeta, save_checkpoint
    from training.models.registry import ModelConfig, create_model

    if (out / "manifest.json").is_file():
        return out
    cfg = ModelConfig(arch=arch, layout="symmetric", in_channels=in_channels, input_size=size)
    ckpt = out.parent / f"{out.name}-checkpoint"
    save_checkpoint(
        ckpt,
        create_model(cfg),
        cfg,
        {"main_head": True, "second_head": True, "merger": True},
        meta=CheckpointMeta(recipe=f"random-{arch}"),
    )
    export_artifact(ckpt, out, fp16=fp16, parity_n=4)
    return out
