"""The HTTP service vs the raw ONNX Runtime session, in one run on this machine.

For each mode and concurrency 1, 8, 32: requests/s and p50/p99 latency of ``POST /predict`` with one
image per request (adaptive batching on), next to a raw ``InferenceSession``'s images/s at batch sizes
1, 8 and 32. The server, the load generator and the raw session share this machine's cores.
Usage: python -m benchmarks.bench_service [--artifact DIR | --arch wrn-16-4 --size 32] [--requests 256]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort

from benchmarks.common import OUT, random_artifact, save
from dhat_serve.contract import INPUT_NAME
from dhat_serve.local_server import Server
from dhat_serve.manifest import load_manifest

CONCURRENCY = (1, 8, 32)


async def load(url: str, mode: str, image: list, concurrency: int, total: int) -> dict[str, float]:
    latencies: list[float] = []
    queue = list(range(total))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            queue.pop()
            start = time.perf_counter()
            r = await client.post(f"{url}/predict", json={"inputs": [image], "mode": mode})
            r.raise_for_status()
            latencies.append(time.perf_counter() - start)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(min(concurrency, 4))))  # warm-up
        latencies.clear()
        queue[:] = list(range(total))
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return {"requests_per_s": total / elapsed, "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * q[98]}


def raw_images_per_s(session: ort.InferenceSession, shape: tuple, batch: int, seconds: float = 2.0) -> float:
    x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    session.run(None, {INPUT_NAME: x})
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(None, {INPUT_NAME: x})
        n += batch
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact", type=Path, default=None)
    parser.add_argument("--arch", default="wrn-16-4")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--modes", default="main,second,merged")
    args = parser.parse_args()
    artifact = args.artifact or random_artifact(args.arch, OUT / f"artifact-{args.arch}", size=args.size)
    manifest = load_manifest(artifact)
    image = np.random.default_rng(1).random(manifest.input_shape, dtype=np.float32).tolist()
    results = {}
    srv = Server(artifact, OUT / f"bench-server-{manifest.architecture['arch']}.log", DHAT_PROVIDER="cpu")
    try:
        srv.wait_ready()
        for mode in args.modes.split(","):
            row = {}
            for c in CONCURRENCY:
                total = args.requests if c > 1 else max(32, args.requests // 4)
                row[f"service_c{c}"] = asyncio.run(load(srv.url, mode, image, c, total))
            results[mode] = row
    finally:
        srv.stop()
    for mode in args.modes.split(","):  # raw sessions after the server stopped: each gets the whole machine
        session = ort.InferenceSession(str(artifact / manifest.modes[mode].file), providers=["CPUExecutionProvider"])
        for b in CONCURRENCY:
            results[mode][f"raw_b{b}_images_per_s"] = raw_images_per_s(session, manifest.input_shape, b)
        results[mode]["service_c32_over_raw_b32"] = (
            results[mode]["service_c32"]["requests_per_s"] / results[mode]["raw_b32_images_per_s"]
        )
    save(
        f"service_{manifest.architecture['arch']}",
        {
            "artifact": str(artifact),
            "arch": manifest.architecture["arch"],
            "requests": args.requests,
            "results": results,
            "target": ">= 0.8 at c32",
        },
    )


if __name__ == "__main__":
    main()
