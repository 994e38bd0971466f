"""Where a request's time goes in ``dhat serve``: py-spy samples the server while one closed-loop cell runs.

Starts ``dhat serve`` (``DHAT_WORKERS=1``) on the benchmark artifact, drives one cell with ``bench_peers``'
client, and records every process of the server with py-spy (``--subprocesses``, idle threads left out).
Prints the functions with the most samples, inclusive (on the stack) and self (at the top), as shares of the
worker's busy samples, and writes the collapsed stacks to ``out/profile_TAG.txt`` (flame-graph input).

Needs ``py-spy`` on PATH (``pip install py-spy``; a profiler, not a dependency of the service).

Usage: python -m benchmarks.profile_serve [--protocol http_binary] [--concurrency 32] [--seconds 8] [--tag before]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_peers import closed_loop
from benchmarks.common import OUT, random_artifact
from benchmarks.peer_servers import MODEL, serving

PACKAGES = (
    "opentelemetry",
    "prometheus_client",
    "_bentoml_impl",
    "bentoml",
    "starlette",
    "uvicorn",
    "h11",
    "httptools",
    "uvloop",
    "orjson",
    "json",
    "logging",
    "asyncio",
    "concurrent",
    "onnxruntime",
    "numpy",
    "dhat_serve",
    "grpc",
)


OTEL_SHORT = ("trace", "asgi", "attributes", "_semconv.py", "sampling.py")


def package_of(frame: str) -> str:
    """The library a py-spy frame ``fn (path/to/file.py:line)`` belongs to (first of ``PACKAGES`` in its path)."""
    path = frame.rpartition(" (")[2]
    parts = path.replace("\\", "/").split("/")
    if parts[0] in OTEL_SHORT:  # a profile recorded without --full-filenames names OpenTelemetry's files short
        return "opentelemetry"
    return next((p for p in parts if p in PACKAGES), "other")


def by_package(collapsed: Path, seconds: float, requests: int) -> list[str]:
    """Self samples of the event-loop thread (the worker's main thread) per library, as shares and as microseconds
    per request: under closed-loop load that thread is the one always busy, so its time per request is the cell's
    seconds / requests, split in the samples' proportions."""
    own: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "_bentoml_impl.worker" not in stack or "Thread._bootstrap" in stack:
            continue  # another process, or a thread of the pool (ONNX Runtime runs there)
        own[package_of(stack.split(";")[-1])] += int(count)
    total = sum(own.values()) or 1
    per_request_us = 1e6 * seconds / max(requests, 1)
    lines = [f"event-loop thread, self time by library ({total} samples; {per_request_us:.0f} µs per request):", ""]
    lines += [
        f"  {100 * n / total:5.1f} %  {n / total * per_request_us:6.0f} µs  {name}" for name, n in own.most_common()
    ]
    return lines


def summarise(collapsed: Path, top: int) -> list[str]:
    """Inclusive and self sample shares per function from py-spy's collapsed stacks (``frame;frame;... count``)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].split("/")[-1] + ")" if " (" in f else f
            for f in stack.split(";")[1:]
        ]  # drop the process/thread frame; "fn (file)" without line numbers
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
    lines = [f"{total} busy samples", "", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f} %  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self:"] + [f"  {100 * n / total:5.1f} %  {f}" for f, n in own.most_common(top)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="http_binary", choices=("http_binary", "http_json", "grpc"))
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--tag", default="profile")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not on PATH: pip install py-spy (into any environment) and retry")
    artifact = random_artifact("wrn-16-2-s8", OUT / "artifact-wrn-16-2-s8-1x16", in_channels=1, size=16)
    x = np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)
    collapsed = OUT / f"profile_{args.tag}.txt"
    with serving("dhat", artifact / f"{MODEL}.onnx", artifact, OUT) as proc:
        asyncio.run(closed_loop(proc, args.protocol, x, args.concurrency, 2.0))  # warm
        spy = subprocess.Popen(
            [
                py_spy,
                "record",
                "--subprocesses",
                "--format",
                "raw",
                "--full-filenames",
                "--rate",
                "250",
                "-d",
                str(int(args.seconds)),
                "-o",
                str(collapsed),
                "-p",
                str(proc.proc.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        cell = asyncio.run(closed_loop(proc, args.protocol, x, args.concurrency, args.seconds - 1))
        spy.wait()
    print(f"{args.protocol} c{args.concurrency} under py-spy: {cell}")
    report = [f"{args.protocol} c{args.concurrency}: {cell}", ""]
    report += by_package(collapsed, args.seconds - 1, cell["requests"]) + [""] + summarise(collapsed, args.top)
    (OUT / f"profile_{args.tag}.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
