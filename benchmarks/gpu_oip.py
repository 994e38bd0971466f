"""On a GPU machine: the service against the raw CUDA session, 64-image OIP requests over HTTP and gRPC.

Issue 19's GPU cell and issue 20's multi-worker check in one run. A randomly initialised WRN-34-10 fp16
artifact (weights do not change speed) is served by ``dhat serve`` with ``DHAT_PROVIDER=cuda`` and
``--workers`` BentoML workers; each worker's log line says which provider and device id every session
got. Each mode is then driven, closed-loop with ``--concurrency`` clients, by 64-image binary requests
over OIP HTTP (``Inference-Header-Content-Length``, what ``tritonclient.http`` sends with binary data)
and over gRPC (a stock ``tritonclient.grpc.aio`` client, ``raw_input_contents``). The raw session
(``ModelRuntime`` on CUDA, host<->device copies included, as the service pays them; ``gpu_ort.images_per_s``)
is timed at batch 64 before and after the service in the same run, and the ratio uses their mean, so a GPU
shared with other work disturbs both sides alike.

Usage: python -m benchmarks.gpu_oip ARTIFACT_DIR OUT_DIR [--workers 2] [--concurrency 4] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from benchmarks.bench_oip import drive, oip_body  # noqa: E402
from benchmarks.gpu_ort import images_per_s  # noqa: E402
from dhat_serve.contract import INPUT_NAME, MODES  # noqa: E402
from dhat_serve.local_server import Server  # noqa: E402
from dhat_serve.runtime import ModelRuntime  # noqa: E402

BATCH = 64


async def grpc_drive(url: str, mode: str, x: np.ndarray, concurrency: int, seconds: float) -> dict[str, float]:
    """Closed-loop gRPC ModelInfer with a stock tritonclient aio client: images/s and requests."""
    import tritonclient.grpc.aio as tgrpc

    client = tgrpc.InferenceServerClient(url)
    inp = tgrpc.InferInput(INPUT_NAME, list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    for _ in range(3):
        await client.infer(mode, [inp])
    done = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            result = await client.infer(mode, [inp])
            assert result.as_numpy("logits").shape[0] == len(x)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await client.close()
    return {"images_per_s": done * len(x) / elapsed, "requests": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runtime = ModelRuntime.load(args.artifact, provider="cuda")
    x = np.random.default_rng(0).random((BATCH, *runtime.manifest.input_shape), dtype=np.float32)
    result: dict = {
        "raw_providers": runtime.providers(),
        "workers": args.workers,
        "concurrency": args.concurrency,
        "batch": BATCH,
        "raw_before": {m: images_per_s(runtime, m, BATCH, args.seconds) for m in MODES},
    }
    print(json.dumps(result), flush=True)
    log = args.out / "gpu_service.log"
    pythonpath = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))  # carried wheels first
    srv = Server(
        args.artifact,
        log,
        grpc=True,
        DHAT_PROVIDER="cuda",
        DHAT_WORKERS=str(args.workers),
        DHAT_MAX_REQUEST_BYTES=str(64 * 1024 * 1024),
        PYTHONPATH=pythonpath,
    )
    try:
        srv.wait_ready(timeout=300)
        time.sleep(10)  # the other workers finish their warm-up
        body, headers = oip_body(x)
        for mode in MODES:
            result[f"http_{mode}"] = asyncio.run(
                drive(f"{srv.url}/v2/models/{mode}/infer", body, headers, args.concurrency, args.seconds, BATCH)
            )
            result[f"grpc_{mode}"] = asyncio.run(grpc_drive(srv.grpc_url, mode, x, args.concurrency, args.seconds))
            print(json.dumps({mode: [result[f"http_{mode}"], result[f"grpc_{mode}"]]}), flush=True)
    finally:
        srv.stop()
    result["raw_after"] = {m: images_per_s(runtime, m, BATCH, args.seconds) for m in MODES}
    for mode in MODES:
        raw = (result["raw_before"][mode] + result["raw_after"][mode]) / 2
        result[f"ratio_{mode}"] = {p: result[f"{p}_{mode}"]["images_per_s"] / raw for p in ("http", "grpc")}
    result["worker_sessions"] = [
        line.strip() for line in log.read_text().splitlines() if re.search(r"worker \d+, mode \w+: .* runs on", line)
    ]
    (args.out / "gpu_oip.json").write_text(json.dumps(result, indent=1))
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
