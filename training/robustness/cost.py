"""What each mode costs to serve, recorded in every report so ``dhat frontier`` needs no artifact.

A user choosing between one dual-head deployment and two separate models weighs memory and time as well as
accuracy: per graph, its parameters (elements of the ONNX initializers: what the graph holds), its file size,
and its latency on ONNX Runtime's CPU provider at batch 1 and 32 (median of repeated runs after a warm-up,
per request and per image). Latency is this machine's, under whatever else it was running: the report says
which machine, and the frontier compares points measured the same way.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from dhat_serve.manifest import Manifest

BATCHES = (1, 32)
REPEATS = {1: 50, 32: 10}
WARMUP = 3


def graph_parameters(path: Path) -> int:
    """Elements of the graph's initializers (weights, biases, folded norms), read without the tensor data."""
    model = onnx.load(str(path), load_external_data=False)
    return int(sum(int(np.prod(init.dims)) for init in model.graph.initializer))


def latency_ms(session: ort.InferenceSession, shape: tuple[int, ...], batch: int) -> dict[str, float]:
    """Median wall time of ``session.run`` on a ``(batch, *shape)`` float32 input: per request and per image (ms)."""
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    for _ in range(WARMUP):
        session.run(None, {name: x})
    times = []
    for _ in range(REPEATS[batch]):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - start)
    median = statistics.median(times) * 1e3
    return {"request_ms": median, "per_image_ms": median / batch}


def model_costs(artifact_dir: Path, manifest: Manifest, modes: tuple[str, ...]) -> dict[str, Any]:
    """``{"machine": ..., "provider": "CPUExecutionProvider", "threads": ..., "modes": {mode: {"parameters",
    "onnx_bytes", "latency": {"1": {...}, "32": {...}}}}, "artifact_bytes": all graphs' bytes}``."""
    options = ort.SessionOptions()
    out: dict[str, Any] = {}
    for mode in modes:
        path = Path(artifact_dir) / manifest.modes[mode].file
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        out[mode] = {
            "parameters": graph_parameters(path),
            "onnx_bytes": path.stat().st_size,
            "latency": {str(b): latency_ms(session, tuple(manifest.input_shape), b) for b in BATCHES},
        }
    threads = options.intra_op_num_threads or "ONNX Runtime's default (one per physical core)"
    return {
        "machine": machine(),
        "provider": "CPUExecutionProvider",
        "threads": threads,
        "artifact_bytes": sum(g.size for g in manifest.modes.values()),
        "modes": out,
    }


def machine() -> str:
    """The CPU model and core count, so a latency is read beside the machine that measured it."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"
