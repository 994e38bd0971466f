"""The engine's warm-up: every mode runs its batch sizes before readiness turns 200 (a fake session held mid-way)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import numpy as np
from starlette.testclient import TestClient

from dhat_serve.config import ServeConfig
from dhat_serve.contract import REQUEST_MODES
from dhat_serve.dataplane import DataPlane
from dhat_serve.engine import Engine
from dhat_serve.http.app import protocol_app
from dhat_serve.observer import Observer
from dhat_serve.service import warm
from dhat_serve.state import ProcessState


class HeldRuntime:
    """Stands in for ``ModelRuntime``: its third run waits for ``gate`` (warm-up held mid-way, ``midway`` set), and a
    record of what ran."""

    manifest = SimpleNamespace(input_shape=(1, 4, 4), request_modes=REQUEST_MODES)

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.midway, self.gate = threading.Event(), threading.Event()

    def run(self, mode: str, images: np.ndarray) -> dict[str, np.ndarray]:
        if len(self.calls) == 2:
            self.midway.set()
            self.gate.wait(10)
        self.calls.append((mode, len(images)))
        return {"logits": np.zeros((len(images), 3), np.float32)}


def test_readiness_is_503_until_the_warm_up_has_run_every_mode_and_batch_size():
    runtime, state, observer = HeldRuntime(), ProcessState(), Observer()
    engine = Engine(runtime, ServeConfig(), observer)  # type: ignore[arg-type]
    plane = DataPlane(engine, state, observer, 8)
    client = TestClient(protocol_app(lambda: plane))
    assert client.get("/v2/health/ready").status_code == 503  # loaded, not warm

    async def scenario() -> bool:
        task = asyncio.create_task(warm(engine, state, (1, 4)))
        await asyncio.to_thread(runtime.midway.wait, 10)  # two runs done, the third held
        ready_midway = state.ready or client.get("/v2/health/ready").status_code != 503
        runtime.gate.set()
        await task
        return ready_midway

    assert not asyncio.run(scenario())
    assert sorted(runtime.calls) == sorted((m, n) for m in REQUEST_MODES for n in (1, 4))
    assert client.get("/v2/health/ready").json() == {"ready": True}
    state.draining = True  # SIGTERM: not ready, still alive
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/health/live").status_code == 200


def test_warm_up_sizes_come_from_the_setting():
    assert ServeConfig(batch_size=32).warmup_sizes() == (1, 32)
    assert ServeConfig(warmup_batches="off").warmup_sizes() == ()
    assert ServeConfig(warmup_batches="16, 2").warmup_sizes() == (2, 16)
    for bad, message in (("x", "use auto, off or batch sizes"), ("0,999", "must be in 1..256")):
        try:
            ServeConfig(warmup_batches=bad).warmup_sizes()
        except ValueError as exc:
            assert message in str(exc)
        else:
            raise AssertionError(bad)
