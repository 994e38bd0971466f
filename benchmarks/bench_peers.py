"""dhat-serve against the servers users would pick instead, side by side in one run (issue 30).

Three servers of the same ``merged.onnx``, one process each, ONNX Runtime on the CPU with the same settings
(``DHAT_PEER_THREADS`` = 2 intra-op threads, spinning off):

- ``dhat serve`` (``DHAT_WORKERS=1``, its own batching, defaults), and ``dhat-logged``: the same with BentoML's
  access log and tracing on and every run on the ONNX Runtime thread (what the defaults were before issue 30);
- MLServer 1.7.1 with the minimal runtime ``peers/mlserver_runtime.py`` (adaptive batching 64 / 2 ms,
  ``parallel_workers: 0``);
- KServe 0.21.0's Python ``ModelServer`` with ``peers/kserve_model.py`` (no batching: KServe's batcher is a
  Go sidecar's; ``--workers 1``).

The peers install from PyPI into their own virtual environments (``--venvs``; created once, reused while
their pins are the same). One client drives every server: tritonclient's asyncio clients, closed loop
(``c`` coroutines each sending back to back for ``--seconds``), one image per request over OIP HTTP with
binary tensors, OIP HTTP with JSON tensors and OIP gRPC at c1 and c32, plus 32-image requests at c8 (binary
HTTP and gRPC). Before any cell, each server's logits for 4 images are checked against the raw session's on
every protocol (a server that refuses a protocol says so in its cell). The raw session (batch-1 p50,
batch-32 images/s) is timed in the same run after the servers stop. Every server started is stopped.

Usage: python -m benchmarks.bench_peers [--artifact DIR] [--seconds 6] [--servers dhat,mlserver,kserve]
       [--venvs benchmarks/out/peer-venvs] [--tag run1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.bench_oip import raw
from benchmarks.common import OUT, random_artifact, save
from benchmarks.peer_servers import DHAT_VARIANTS, MODEL, Proc, serving

CELLS = (
    ("http_binary", 1, 1),
    ("http_binary", 1, 32),
    ("http_json", 1, 1),
    ("http_json", 1, 32),
    ("grpc", 1, 1),
    ("grpc", 1, 32),
    ("http_binary", 32, 8),
    ("grpc", 32, 8),
)
"""(protocol, images per request, concurrency)."""


def requester(proc: Proc, protocol: str, x: np.ndarray, concurrency: int) -> tuple[Callable, Callable]:
    """(an async call that sends one infer request of ``x`` and returns its logits, a close coroutine)."""
    if protocol == "grpc":
        import tritonclient.grpc as grpc_types
        import tritonclient.grpc.aio as grpc_aio

        client = grpc_aio.InferenceServerClient(proc.grpc)
        inp = grpc_types.InferInput("images", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        outs = [grpc_types.InferRequestedOutput("logits")]
    else:
        import tritonclient.http as http_types
        import tritonclient.http.aio as http_aio

        binary = protocol == "http_binary"
        client = http_aio.InferenceServerClient(proc.http, conn_limit=max(concurrency, 1))
        inp = http_types.InferInput("images", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        outs = [http_types.InferRequestedOutput("logits", binary_data=binary)]
    headers = {"Content-Type": "application/json"} if protocol == "http_json" else None  # both peers want it

    async def call() -> np.ndarray:
        result = await client.infer(MODEL, [inp], outputs=outs, headers=headers)
        return result.as_numpy("logits")

    return call, client.close


async def closed_loop(proc: Proc, protocol: str, x: np.ndarray, concurrency: int, seconds: float) -> dict:
    """``concurrency`` coroutines sending ``x`` back to back for ``seconds`` (after 1 s of warm-up)."""
    call, close = requester(proc, protocol, x, concurrency)
    latencies: list[float] = []
    try:
        warm = time.perf_counter() + 1.0
        while time.perf_counter() < warm:
            await asyncio.gather(*(call() for _ in range(concurrency)))

        async def loop(stop: float) -> None:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                await call()
                latencies.append(time.perf_counter() - start)

        begin = time.perf_counter()
        await asyncio.gather(*(loop(begin + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - begin
    finally:
        await close()
    return {
        "images_per_s": round(len(latencies) * len(x) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 3),
        "p99_ms": round(1000 * statistics.quantiles(latencies, n=100)[98], 3),
        "requests": len(latencies),
    }


async def parity(proc: Proc, protocol: str, x: np.ndarray, expected: np.ndarray) -> float:
    """The largest |logit - raw session logit| over ``x`` on ``protocol``; raises what the server answered if it
    refuses."""
    call, close = requester(proc, protocol, x, 1)
    try:
        return float(np.abs(await call() - expected).max())
    finally:
        await close()


def measure(
    proc: Proc,
    x1: np.ndarray,
    x32: np.ndarray,
    check: np.ndarray,
    expected: np.ndarray,
    seconds: float,
    cells: tuple[tuple[str, int, int], ...] = CELLS,
) -> dict:
    """Every cell of one server; a protocol whose parity request is refused is reported as refused."""
    result: dict = {"parity": {}, "cells": {}}
    for protocol in ("http_binary", "http_json", "grpc"):
        try:
            diff = asyncio.run(parity(proc, protocol, check, expected))
            result["parity"][protocol] = diff
            if diff > 1e-4:
                raise RuntimeError(f"{proc.name} {protocol}: logits differ from the raw session by {diff}")
        except Exception as exc:
            if isinstance(exc, RuntimeError) and "differ" in str(exc):
                raise
            result["parity"][protocol] = f"refused: {str(exc)[:160]}"
    for protocol, images, concurrency in cells:
        key = cell_key(protocol, images, concurrency)
        if isinstance(result["parity"][protocol], str):
            result["cells"][key] = result["parity"][protocol]
            continue
        result["cells"][key] = asyncio.run(
            closed_loop(proc, protocol, x1 if images == 1 else x32, concurrency, seconds)
        )
        print(proc.name, key, result["cells"][key], flush=True)
    return result


def cell_key(protocol: str, images: int, concurrency: int) -> str:
    return f"{protocol}_{images}img_c{concurrency}"


def table(results: dict, raw_cells: dict, cells: tuple[tuple[str, int, int], ...] = CELLS) -> list[str]:
    """The markdown table: one row per cell, one column per server, dhat over the faster peer."""
    servers = list(results)
    peers = [s for s in servers if s not in DHAT_VARIANTS]
    md = [f"| cell | {' | '.join(servers)} | dhat / best peer |", "|---" * (len(servers) + 2) + "|"]
    for protocol, images, concurrency in cells:
        key = cell_key(protocol, images, concurrency)
        metric, better = ("p50_ms", min) if concurrency == 1 else ("images_per_s", max)
        values = {s: results[s]["cells"][key] for s in servers}
        shown = [f"{v[metric]:g}" if isinstance(v, dict) else "refused" for v in values.values()]
        got = [v[metric] for s, v in values.items() if s in peers and isinstance(v, dict)]
        ratio = ""
        if got and isinstance(values.get("dhat"), dict):
            best = better(got)
            ratio = (
                f"{values['dhat'][metric] / best:.2f}×"
                if metric == "images_per_s"
                else f"{values['dhat'][metric] - best:+.2f} ms"
            )
        unit = "p50 ms" if concurrency == 1 else "images/s"
        md.append(f"| {protocol}, {images} img, c{concurrency} ({unit}) | {' | '.join(shown)} | {ratio} |")
    md.append(
        f"| raw session | b1 p50 {raw_cells['raw_b1']['p50_ms']:.3f} ms; "
        f"b32 {raw_cells['raw_b32']['images_per_s']:.0f} images/s |" + " |" * len(servers)
    )
    return md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--artifact",
        type=Path,
        default=None,
        help="an exported artifact (default: a random-weight digits-shaped one, wrn-16-2-s8 1x16x16)",
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per cell, after 1 s of warm-up")
    parser.add_argument(
        "--servers",
        default="dhat,mlserver,kserve",
        help=f"comma-separated, of mlserver, kserve and {', '.join(DHAT_VARIANTS)}",
    )
    parser.add_argument("--venvs", type=Path, default=OUT / "peer-venvs", help="where the peers' venvs are made")
    parser.add_argument(
        "--cells", default=None, help="a comma-separated subset of the cells, e.g. http_binary_1img_c32 (default: all)"
    )
    parser.add_argument("--tag", default="run", help="the result file is out/peers_TAG.json")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    artifact = args.artifact or random_artifact(
        "wrn-16-2-s8", OUT / "artifact-wrn-16-2-s8-1x16", in_channels=1, size=16
    )
    from dhat_serve.manifest import load_manifest
    from dhat_serve.runtime import ModelRuntime

    manifest = load_manifest(artifact)
    onnx, shape = artifact / manifest.modes[MODEL].file, manifest.input_shape
    rng = np.random.default_rng(0)
    x1, x32, check = (rng.random((n, *shape), dtype=np.float32) for n in (1, 32, 4))
    expected = ModelRuntime.load(artifact, "cpu").run(MODEL, check)["logits"]
    cells = CELLS if not args.cells else tuple(c for c in CELLS if cell_key(*c) in args.cells.split(","))
    results = {}
    for name in args.servers.split(","):
        with serving(name, onnx, artifact, args.venvs) as proc:
            results[name] = measure(proc, x1, x32, check, expected, args.seconds, cells)
    raw_cells = {"raw_b1": raw(onnx, shape, 1, args.seconds), "raw_b32": raw(onnx, shape, 32, args.seconds)}
    md = table(results, raw_cells, cells)
    save(
        f"peers_{args.tag}",
        {"artifact": str(artifact), "seconds": args.seconds, "servers": results, "raw": raw_cells, "table": md},
    )
    print("\n".join(md))


if __name__ == "__main__":
    main()
