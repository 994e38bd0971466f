"""The service against its own ONNX Runtime session, measured in the same run (issue 13's targets).

Load generator: ``wrk`` (a C HTTP load generator, Debian package ``wrk``) when it is on PATH, else an
async Python client (httpx, which itself tops out near 300 requests/s on 2 cores: see the README),
on the same machine, sending Open Inference Protocol v2 binary requests (what `tritonclient` sends with
``binary_data=True``) and, for comparison, ``/predict``
JSON. The raw session is timed in the same run, after the server stops, with the same ORT settings
the service uses (intra-op threads = cores, spinning off), so the ratio is service / raw.

Cells: one image per request at concurrency 1 (p50 latency vs raw ``session.run`` at batch 1) and 32
(images/s vs raw batch 32); 32-image binary requests at concurrency 8 (vs raw batch 32).

Usage: python -m benchmarks.bench_oip --artifact artifacts/digits [--mode merged] [--seconds 6] [--workers 2]
       python -m benchmarks.bench_oip --arch wrn-34-10 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort

from benchmarks.common import OUT, random_artifact, save
from dhat_serve.contract import INPUT_NAME
from dhat_serve.local_server import Server
from dhat_serve.manifest import load_manifest


def oip_body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """A binary OIP infer request for (N, C, H, W) float32 ``x``, asking for binary logits back."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": INPUT_NAME,
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return header + x.tobytes(), {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


async def drive(
    url: str,
    body: bytes,
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    images: int,
    json_body: dict | None = None,
) -> dict[str, float]:
    """Closed-loop load: ``concurrency`` clients send back to back for ``seconds``; images/s and latency."""
    latencies: list[float] = []

    async def client_loop(client: httpx.AsyncClient, stop: float) -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            r = await (
                client.post(url, json=json_body)
                if json_body is not None
                else client.post(url, content=body, headers=headers)
            )
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
            latencies.append(time.perf_counter() - start)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        warm = time.perf_counter() + 1.0
        while time.perf_counter() < warm:
            await (
                client.post(url, json=json_body)
                if json_body is not None
                else client.post(url, content=body, headers=headers)
            )
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client, start + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {
        "images_per_s": len(latencies) * images / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * statistics.quantiles(latencies, n=100)[98],
        "requests": len(latencies),
    }


def wrk(
    url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float, images: int
) -> dict[str, float]:
    """The same closed-loop cell driven by ``wrk``: a Lua script posts ``body`` with ``headers``."""
    OUT.mkdir(exist_ok=True)
    (OUT / "wrk-body.bin").write_bytes(body)
    lines = [
        f'local f = io.open("{OUT / "wrk-body.bin"}", "rb"); wrk.body = f:read("*all"); f:close()',
        'wrk.method = "POST"',
    ] + [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    (OUT / "wrk-post.lua").write_text("\n".join(lines) + "\n")
    subprocess.run(["wrk", "-t1", "-c1", "-d1s", "-s", str(OUT / "wrk-post.lua"), url], capture_output=True)  # warm-up
    text = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "-s", str(OUT / "wrk-post.lua"), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in text:
        raise RuntimeError(f"wrk saw non-2xx answers:\n{text}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    return {"images_per_s": rps * images, "p50_ms": ms("50%"), "p99_ms": ms("99%"), "client": "wrk"}


def raw(path: Path, shape: tuple, batch: int, seconds: float) -> dict[str, float]:
    """The bare session with the service's settings: images/s and p50 ms per ``session.run`` at ``batch``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    session.run(None, {INPUT_NAME: x})
    times, stop = [], time.perf_counter() + seconds
    while time.perf_counter() < stop:
        start = time.perf_counter()
        session.run(None, {INPUT_NAME: x})
        times.append(time.perf_counter() - start)
    return {"images_per_s": batch * len(times) / sum(times), "p50_ms": 1000 * statistics.median(times)}


def served_cells(artifact: Path, args: argparse.Namespace, use_wrk: bool) -> dict[str, dict]:
    """The server's cells: one (1, C, H, W) image at c1 and c32, 32 images at c8 over OIP binary HTTP, and
    one image as JSON on ``/predict`` at c32; the server is started here and stopped whatever happens."""
    manifest = load_manifest(artifact)
    shape = manifest.input_shape
    one = np.random.default_rng(1).random((1, *shape), dtype=np.float32)
    many = np.random.default_rng(2).random((32, *shape), dtype=np.float32)
    url_path = f"/v2/models/{args.mode}/infer"
    cells: dict[str, dict] = {}
    srv = Server(
        artifact,
        OUT / f"oip-server-{manifest.architecture['arch']}.log",
        DHAT_PROVIDER="cpu",
        DHAT_WORKERS=str(args.workers),
    )
    try:
        srv.wait_ready()
        time.sleep(5 * (args.workers - 1))  # the other workers load their sessions
        url = srv.url + url_path
        body1, headers1 = oip_body(one)
        body32, headers32 = oip_body(many)

        def cell(body: bytes, headers: dict[str, str], concurrency: int, images: int) -> dict[str, float]:
            if use_wrk:
                return wrk(url, body, headers, concurrency, args.seconds, images)
            return asyncio.run(drive(url, body, headers, concurrency, args.seconds, images))

        cells["oip_1img_c1"] = cell(body1, headers1, 1, 1)
        cells["oip_1img_c32"] = cell(body1, headers1, 32, 1)
        cells["oip_32img_c8"] = cell(body32, headers32, 8, 32)
        cells["predict_json_1img_c32"] = asyncio.run(
            drive(srv.url + "/predict", b"", {}, 32, args.seconds, 1, {"inputs": one.tolist(), "mode": args.mode})
        )
    finally:
        srv.stop()
    return cells


def main() -> None:
    """Run every cell for one mode and save ``out/oip_<arch>_<mode>.json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artifact", type=Path, default=None)
    parser.add_argument("--arch", default="wrn-34-10")
    parser.add_argument("--mode", default="merged")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=1, help="DHAT_WORKERS for the server")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    args = parser.parse_args()
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    artifact = args.artifact or random_artifact(args.arch, OUT / f"artifact-{args.arch}")
    manifest = load_manifest(artifact)
    shape = manifest.input_shape
    cells = served_cells(artifact, args, use_wrk)
    graph = artifact / manifest.modes["merged" if args.mode == "all" else args.mode].file
    cells["raw_b1"] = raw(graph, shape, 1, args.seconds)
    cells["raw_b32"] = raw(graph, shape, 32, args.seconds)
    ratios = {
        "oip_1img_c32_over_raw_b32": cells["oip_1img_c32"]["images_per_s"] / cells["raw_b32"]["images_per_s"],
        "oip_32img_c8_over_raw_b32": cells["oip_32img_c8"]["images_per_s"] / cells["raw_b32"]["images_per_s"],
        "oip_c1_p50_minus_raw_b1_p50_ms": cells["oip_1img_c1"]["p50_ms"] - cells["raw_b1"]["p50_ms"],
    }
    save(
        f"oip_{manifest.architecture['arch']}_{args.mode}_w{args.workers}_{'wrk' if use_wrk else 'httpx'}",
        {
            "artifact": str(artifact),
            "mode": args.mode,
            "workers": args.workers,
            "client": "wrk" if use_wrk else "httpx",
            "cells": cells,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    main()
