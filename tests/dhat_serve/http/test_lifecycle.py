"""Overload, deadlines, decompression bombs and SIGTERM on the real server: only clear answers, nothing lost."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import struct
import time
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from dhat_serve.local_server import Server, serving


def _png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR is rewritten to claim width x height (CRC fixed): a decompression bomb header."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data[12:29]  # b"IHDR" + 13 bytes of header fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


@pytest.fixture(scope="module")
def artifact(symmetric_artifact):
    return symmetric_artifact[1]


def _start(artifact, tmp_path, **env) -> Server:
    srv = Server(artifact, tmp_path / "server.log", DHAT_PROVIDER="cpu", **env)
    srv.wait_ready()
    return srv


async def _burst(url: str, n: int, concurrency: int, x: np.ndarray) -> list[tuple[int | str, dict, float]]:
    """``n`` requests from ``concurrency`` clients, each sending back to back: (status or error, headers, time).

    Closed-loop clients, not ``n`` coroutines on one pool: httpcore assigns queued requests to connections
    in O(requests x connections) per step, which starves a 1,500-request burst before it connects.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results: list[tuple[int | str, dict, float]] = []
    counts = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one_client(k: int) -> None:
            for _ in range(k):
                try:
                    r = await client.post(f"{url}/predict", json={"inputs": x.tolist(), "mode": "merged"})
                    results.append((r.status_code, dict(r.headers), time.time()))
                except httpx.HTTPError as exc:
                    results.append((type(exc).__name__, {}, time.time()))

        await asyncio.gather(*(one_client(k) for k in counts if k))
    return results


@pytest.fixture(scope="module")
def small_image_server(artifact, tmp_path_factory):
    """One server for every bomb size (a server start is the expensive part, not the request)."""
    with serving(
        artifact, tmp_path_factory.mktemp("bomb") / "server.log", DHAT_PROVIDER="cpu", DHAT_MAX_IMAGE_PIXELS="20000"
    ) as srv:
        yield srv


@pytest.mark.parametrize("size", [(30000, 30000), (100000, 100000), (5000, 5000)])
def test_a_decompression_bomb_header_is_a_4xx_with_a_message(small_image_server, size):
    srv = small_image_server
    r = httpx.post(f"{srv.url}/classify", files={"image": ("bomb.png", _png_claiming(*size), "image/png")}, timeout=30)
    assert r.status_code in (400, 413), r.text
    assert "pixels" in r.text
    assert "Traceback" not in srv.log.read_text()


@pytest.mark.slow
def test_overload_is_only_200_429_503_and_the_server_recovers(artifact, tmp_path):
    srv = _start(artifact, tmp_path, DHAT_QUEUE_SIZE="2", DHAT_MAX_CONCURRENCY="24", DHAT_BATCH_SIZE="4")
    try:
        x = np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32)
        results = asyncio.run(_burst(srv.url, 1500, 300, x))
        codes = [c for c, _, _ in results]
        assert set(codes) <= {200, 429, 503}, sorted(set(map(str, codes)))
        assert codes.count(200) > 0 and (codes.count(429) + codes.count(503)) > 0, {
            c: codes.count(c) for c in set(codes)
        }
        assert all(h.get("retry-after") == "1" for c, h, _ in results if c in (429, 503))
        r = httpx.post(f"{srv.url}/predict", json={"inputs": x[:1].tolist(), "mode": "main"}, timeout=30)
        assert r.status_code == 200, r.text
        metrics = httpx.get(f"{srv.url}/metrics", timeout=10).text
        if codes.count(503):
            assert 'dhat_rejected_total{mode="merged",reason="queue_full"}' in metrics
        if codes.count(429):
            assert 'dhat_rejected_total{mode="any",reason="max_concurrency"}' in metrics
    finally:
        srv.stop()


def test_a_request_past_its_deadline_gets_504(artifact, tmp_path):
    srv = _start(artifact, tmp_path, DHAT_TIMEOUT_S="0.000001")
    try:
        r = httpx.post(
            f"{srv.url}/predict", json={"inputs": np.zeros((1, 1, 8, 8)).tolist(), "mode": "main"}, timeout=30
        )
        assert r.status_code == 504 and "deadline" in r.json()["error"]
        r = httpx.post(
            f"{srv.url}/v2/models/main/infer",
            timeout=30,
            json={"inputs": [{"name": "images", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.0] * 64}]},
        )
        assert r.status_code == 504 and "deadline" in r.json()["error"]
    finally:
        srv.stop()


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.slow
def test_sigterm_drains_every_request_sent_before_it(artifact, tmp_path, group):
    # 400 requests of 64 images each keep the server busy for seconds; SIGTERM 0.2 s after they were sent,
    # to the server's main process (docker stop, Kubernetes) or to its whole process group
    srv = _start(
        artifact, tmp_path, DHAT_BATCH_SIZE="64", DHAT_QUEUE_SIZE="1000", DHAT_GRACE_S="60", DHAT_DRAIN_DELAY_S="2"
    )
    x = np.random.default_rng(1).random((64, 1, 8, 8), dtype=np.float32)

    async def scenario():
        task = asyncio.create_task(_burst(srv.url, 400, 400, x))
        await asyncio.sleep(0.2)
        signalled = time.time()
        (os.killpg if group else os.kill)(srv.proc.pid, signal.SIGTERM)
        return await task, signalled

    try:
        results, signalled = asyncio.run(scenario())
        codes = [c for c, _, _ in results]
        assert codes == [200] * 400, {str(c): codes.count(c) for c in set(codes)}
        assert sum(1 for _, _, t in results if t > signalled) > 0, (
            "nothing was in flight at SIGTERM; the test proves nothing"
        )
        assert srv.proc.wait(timeout=60) is not None
        assert "SIGTERM: drained after" in srv.log.read_text()
    finally:
        srv.stop()
