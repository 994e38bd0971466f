"""Overload bursts against the real server: how many requests end without an HTTP answer.

Each burst is 1,500 ``/predict`` requests (16 images, mode merged) from 300 closed-loop clients against
a server that sheds hard (``DHAT_QUEUE_SIZE=2``, ``DHAT_MAX_CONCURRENCY=24``, ``DHAT_BATCH_SIZE=4``): the
answers must be 200, 429 or 503 only. A client error (``ReadError``) means the server closed a connection
the client was reusing; ``--keep-alive`` sets ``DHAT_KEEP_ALIVE_S`` to compare uvicorn's 5 s with ours.

    python -m benchmarks.bench_overload --bursts 12 --keep-alive 75
    python -m benchmarks.bench_overload --bursts 12 --keep-alive 5
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
from pathlib import Path

import httpx
import numpy as np

from dhat_serve.local_server import Server
from export.sample import make_artifact


async def burst(url: str, x: np.ndarray, clients: int = 300, per_client: int = 5) -> list[int | str]:
    """Status codes, or the client error's name, of ``clients`` x ``per_client`` back-to-back requests."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    results: list[int | str] = []
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one() -> None:
            for _ in range(per_client):
                try:
                    r = await client.post(f"{url}/predict", json={"inputs": x.tolist(), "mode": "merged"})
                    results.append(r.status_code)
                except httpx.HTTPError as exc:
                    results.append(type(exc).__name__)

        await asyncio.gather(*(one() for _ in range(clients)))
    return results


def main() -> None:
    """Run the bursts and print each one's outcomes and the total of requests left without an answer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=12)
    parser.add_argument("--keep-alive", type=int, default=75, help="DHAT_KEEP_ALIVE_S for the server")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    _, artifact = make_artifact(root)
    srv = Server(
        artifact,
        root / "server.log",
        DHAT_PROVIDER="cpu",
        DHAT_QUEUE_SIZE="2",
        DHAT_MAX_CONCURRENCY="24",
        DHAT_BATCH_SIZE="4",
        DHAT_KEEP_ALIVE_S=str(args.keep_alive),
    )
    x = np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32)
    lost = 0
    try:
        srv.wait_ready()
        for i in range(args.bursts):
            counts = collections.Counter(asyncio.run(burst(srv.url, x)))
            lost += sum(n for k, n in counts.items() if not isinstance(k, int))
            print(i, dict(counts), flush=True)
    finally:
        srv.stop()
    print(f"keep-alive {args.keep_alive} s: {lost} of {1500 * args.bursts} requests without an HTTP answer")


if __name__ == "__main__":
    main()
