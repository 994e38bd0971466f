"""On a GPU machine: the WRN-34-10 graphs under ONNX Runtime's CUDA execution provider.

Exports a randomly initialised symmetric WRN-34-10 (fp32 and fp16; weights do not change speed), loads
each artifact with ``ModelRuntime`` (provider ``cuda``), prints which provider every session really got,
and measures per-mode images/s at batch 1, 64 and 256 (IO binding is not used: numbers include the
host<->device copies a service pays). Usage: python -m benchmarks.gpu_ort OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import random_artifact
from dhat_serve.contract import MODES
from dhat_serve.runtime import ModelRuntime


def images_per_s(rt: ModelRuntime, mode: str, batch: int, seconds: float = 3.0) -> float:
    x = np.random.default_rng(0).random((batch, *rt.manifest.input_shape), dtype=np.float32)
    for _ in range(3):
        rt.run(mode, x)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        rt.run(mode, x)
        n += batch
    return n / (time.perf_counter() - start)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-artifacts")
    results = {}
    for precision in ("fp32", "fp16"):
        artifact = random_artifact("wrn-34-10", out / f"wrn-34-10-{precision}", fp16=precision == "fp16")
        rt = ModelRuntime.load(artifact, provider="cuda")
        results[precision] = {
            "providers": rt.providers(),
            "parity": {m: g.parity["max_abs_diff"] for m, g in rt.manifest.modes.items()},
        }
        for mode in MODES:
            results[precision][mode] = {f"b{b}": round(images_per_s(rt, mode, b), 1) for b in (1, 64, 256)}
        print(json.dumps({precision: results[precision]}), flush=True)
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
