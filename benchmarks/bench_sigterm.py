"""SIGTERM under load: how many requests written before the signal get an answer, and which.

Starts the server on the tiny test artifact, sends ``--requests`` requests of 64 images each on their
own connections (seconds of work), sends SIGTERM to the server's main process (what ``docker stop`` and
Kubernetes send to PID 1) ``--after`` seconds later, and counts the outcomes. Issue 13 asks for every
request sent before the signal to get 200.

Usage: python -m benchmarks.bench_sigterm [--requests 300] [--after 1.0] [--group]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time

import httpx
import numpy as np

from benchmarks.common import OUT, save
from dhat_serve.local_server import Server
from export.sample import make_artifact


async def burst(url: str, n: int, x: np.ndarray, after: float, kill) -> tuple[list, float]:
    """``n`` concurrent /predict requests; ``kill()`` ``after`` seconds in; (outcomes, signal time)."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one():
            try:
                r = await client.post(f"{url}/predict", json={"inputs": x.tolist(), "mode": "merged"})
                return r.status_code, time.time()
            except httpx.HTTPError as exc:
                return type(exc).__name__, time.time()

        task = asyncio.gather(*(one() for _ in range(n)))
        await asyncio.sleep(after)
        signalled = time.time()
        kill()
        return await task, signalled


def main() -> None:
    """Run the scenario once and save ``out/sigterm.json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--after", type=float, default=1.0)
    parser.add_argument("--group", action="store_true", help="signal the whole process group (arbiter and workers)")
    args = parser.parse_args()
    root = OUT / "sigterm"
    root.mkdir(parents=True, exist_ok=True)
    artifact = root / "artifact" if (root / "artifact/manifest.json").is_file() else make_artifact(root)[1]
    srv = Server(artifact, root / "server.log", DHAT_PROVIDER="cpu", DHAT_BATCH_SIZE="64", DHAT_QUEUE_SIZE="1000")
    srv.wait_ready()
    kill = (
        (lambda: os.killpg(srv.proc.pid, signal.SIGTERM))
        if args.group
        else (lambda: os.kill(srv.proc.pid, signal.SIGTERM))
    )
    x = np.random.default_rng(1).random((64, 1, 8, 8), dtype=np.float32)
    results, signalled = asyncio.run(burst(srv.url, args.requests, x, args.after, kill))
    srv.proc.wait(timeout=60)
    codes = [str(c) for c, _ in results]
    save(
        "sigterm",
        {
            "requests": args.requests,
            "signal_after_s": args.after,
            "group": args.group,
            "outcomes": {c: codes.count(c) for c in sorted(set(codes))},
            "answered_200_after_signal": sum(1 for c, t in results if c == 200 and t > signalled),
        },
    )


if __name__ == "__main__":
    main()
