"""NVIDIA's ``perf_analyzer`` against the service, over HTTP and gRPC, beside the raw ONNX Runtime session.

``perf_analyzer`` is Triton's own load generator: it reads ``/v2/models/{m}/config`` and the statistics
in Triton's schema, so this run is also the check that Triton's tooling works unchanged. It ships only
inside the ``tritonclient==2.41.0`` Linux wheel (newer wheels dropped it); this script fetches that
wheel and ``nvidia-cuda-runtime-cu12`` (its ``libcudart.so.12``; no GPU is needed for HTTP/gRPC runs)
from PyPI into ``benchmarks/out/tools`` once, and needs Debian's ``libb64-0d`` (installed with apt-get
when run as root). Cells: one image per request at concurrency 1 (p50 latency; server overhead = p50
minus the raw ``session.run`` p50 at batch 1) and at concurrency 32 (images/s vs raw batch 32).

Usage: python -m benchmarks.bench_perf_analyzer [--artifact artifacts/digits] [--mode merged] [--seconds 4]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.common import OUT, save
from dhat_serve.contract import INPUT_NAME, request_graph
from dhat_serve.local_server import Server
from dhat_serve.manifest import load_manifest

TOOLS = OUT / "tools"
WHEELS = ("tritonclient==2.41.0", "nvidia-cuda-runtime-cu12==12.3.101")


def ensure_perf_analyzer() -> tuple[Path, dict[str, str]]:
    """The ``perf_analyzer`` binary and the environment it runs in, fetched and unpacked on first use."""
    binary, libdir = TOOLS / "perf_analyzer", TOOLS / "lib"
    if not binary.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--platform",
                "manylinux1_x86_64",
                "-d",
                str(TOOLS),
                *WHEELS,
            ],
            check=True,
            capture_output=True,
        )
        libdir.mkdir(exist_ok=True)
        for wheel in TOOLS.glob("*.whl"):
            with zipfile.ZipFile(wheel) as z:
                for name in z.namelist():
                    if name.endswith("/bin/perf_analyzer"):
                        binary.write_bytes(z.read(name))
                    elif name.endswith("/libcudart.so.12"):
                        (libdir / "libcudart.so.12").write_bytes(z.read(name))
        binary.chmod(0o755)
    if b"libb64.so.0d" not in subprocess.run(["ldconfig", "-p"], capture_output=True).stdout:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise SystemExit("perf_analyzer needs Debian's libb64-0d: sudo apt-get install -y libb64-0d")
        subprocess.run(["apt-get", "install", "-y", "-q", "libb64-0d"], check=True, capture_output=True)
    return binary, {**os.environ, "LD_LIBRARY_PATH": f"{libdir}:{os.environ.get('LD_LIBRARY_PATH', '')}"}


def perf_analyzer(
    binary: Path, env: dict[str, str], url: str, protocol: str, model: str, concurrency: int, seconds: float
) -> dict[str, float]:
    """One ``perf_analyzer`` cell (batch 1): images/s, p50 / p99 latency (ms) and its server-side split (µs)."""
    out = OUT / f"perf_analyzer_{protocol}_c{concurrency}.csv"
    cmd = [
        str(binary),
        "-m",
        model,
        "-u",
        url,
        "-i",
        protocol,
        "-b",
        "1",
        "--concurrency-range",
        str(concurrency),
        "--measurement-interval",
        str(int(seconds * 1000)),
        "-f",
        str(out),
        "--percentile",
        "50",
        "--input-data",
        "zero",
    ]  # zeros: in the model's [0, 1] range (its default random floats are not)
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"perf_analyzer {protocol} failed:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    row = next(csv.DictReader(io.StringIO(out.read_text())))
    return {
        "images_per_s": float(row["Inferences/Second"]),
        "p50_ms": float(row["p50 latency"]) / 1000,
        "p99_ms": float(row["p99 latency"]) / 1000,
        "server_queue_us": float(row["Server Queue"]),
        "server_compute_us": float(row["Server Compute Infer"]),
        "client_send_us": float(row["Client Send"]),
        "network_server_us": float(row["Network+Server Send/Recv"]),
        "client_recv_us": float(row["Client Recv"]),
        "stdout_tail": run.stdout.strip().splitlines()[-12:],
    }


def raw_session(artifact: Path, mode: str, threads: int, seconds: float) -> dict[str, float]:
    """The raw ORT session with the service's settings: p50 ms at batch 1 and images/s at batch 32."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(
        str(artifact / f"{request_graph(mode)}.onnx"), options, providers=["CPUExecutionProvider"]
    )
    shape = load_manifest(artifact).input_shape
    result = {}
    for batch in (1, 32):
        x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
        times, stop = [], time.perf_counter() + seconds
        while time.perf_counter() < stop:
            start = time.perf_counter()
            session.run(["logits"], {INPUT_NAME: x})
            times.append(time.perf_counter() - start)
        result[f"batch{batch}_p50_ms"] = float(np.median(times) * 1000)
        result[f"batch{batch}_images_per_s"] = batch / float(np.median(times))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=Path("artifacts/digits"))
    parser.add_argument("--mode", default="merged")
    parser.add_argument("--seconds", type=float, default=4.0, help="perf_analyzer measurement interval per window")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    binary, env = ensure_perf_analyzer()
    srv = Server(
        args.artifact, OUT / "perf_analyzer_server.log", grpc=True, DHAT_PROVIDER="cpu", DHAT_WORKERS=str(args.workers)
    )
    cells = {}
    try:
        srv.wait_ready()
        for protocol, url in (("http", srv.url.removeprefix("http://")), ("grpc", srv.grpc_url)):
            for concurrency in (1, 32):
                cells[f"{protocol}_c{concurrency}"] = perf_analyzer(
                    binary, env, url, protocol, args.mode, concurrency, args.seconds
                )
                print(
                    protocol,
                    concurrency,
                    {k: v for k, v in cells[f"{protocol}_c{concurrency}"].items() if k != "stdout_tail"},
                    flush=True,
                )
    finally:
        srv.stop()
    raw = raw_session(args.artifact, args.mode, os.cpu_count() or 1, 3.0)
    for protocol in ("http", "grpc"):
        cells[f"{protocol}_overhead_ms"] = cells[f"{protocol}_c1"]["p50_ms"] - raw["batch1_p50_ms"]
        cells[f"{protocol}_c32_vs_raw32"] = cells[f"{protocol}_c32"]["images_per_s"] / raw["batch32_images_per_s"]
    result = {"artifact": str(args.artifact), "mode": args.mode, "workers": args.workers, "raw": raw, **cells}
    print(save("perf_analyzer", result))
    for key in ("http_overhead_ms", "grpc_overhead_ms", "http_c32_vs_raw32", "grpc_c32_vs_raw32"):
        print(f"{key}: {cells[key]:.3f}")


if __name__ == "__main__":
    main()
