"""The engine: the artifact's sessions and one batcher per request mode, in the process that parses requests.

Every protocol (``/classify``, ``/predict``, the Open Inference Protocol) calls ``Engine.infer(mode,
images)``; nothing crosses a process boundary between the socket and ``session.run``. ``EngineHolder``
is the one per-process slot through which the BentoML service (which creates the engine when its worker
starts) hands it to the ASGI routes and middleware that BentoML builds at import time.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from dhat_serve.batching import Batcher, Overloaded
from dhat_serve.config import ServeConfig
from dhat_serve.contract import ALL, GRAPH_OUTPUTS, LOGITS, MERGED, MODES, REQUEST_MODES
from dhat_serve.runtime import ModelRuntime

log = logging.getLogger("bentoml.dhat")


def output_names(mode: str) -> tuple[str, ...]:
    """What a request mode answers: ``logits`` for one mode; all three outputs of ``merged.onnx`` for ``all``."""
    return GRAPH_OUTPUTS[MERGED] if mode == ALL else (LOGITS,)


class Engine:
    """Sessions plus per-mode batchers; ``infer`` is the only way a request reaches ONNX Runtime."""

    def __init__(self, runtime: ModelRuntime, cfg: ServeConfig, observe=None, in_flight=None) -> None:  # noqa: ANN001
        self.runtime, self.cfg = runtime, cfg
        self.executor = ThreadPoolExecutor(max_workers=len(REQUEST_MODES), thread_name_prefix="ort")
        runs = {mode: (lambda x, m=mode: [runtime.run(m, x)]) for mode in MODES}
        runs[ALL] = lambda x: list(runtime.run_all(x))
        self.batchers = {mode: Batcher(mode, run, self.executor, cfg.batch_size, cfg.max_wait_ms / 1000, cfg.queue_size,
                                       observe, in_flight) for mode, run in runs.items()}

    @classmethod
    def load(cls, artifact_dir: Path, cfg: ServeConfig, observe=None, in_flight=None) -> Engine:  # noqa: ANN001
        """Verify and open the artifact with serving thread settings, and log the provider of each session."""
        runtime = ModelRuntime.load(artifact_dir, cfg.provider, intra_op_threads=cfg.ort_threads())
        for mode, providers in runtime.providers().items():
            log.info("mode %s: %s runs on %s (%d intra-op threads, spinning off)", mode,
                     runtime.manifest.modes[mode].file, ", ".join(providers), cfg.ort_threads())
        return cls(runtime, cfg, observe, in_flight)

    async def infer(self, mode: str, images: np.ndarray) -> dict[str, np.ndarray]:
        """(N, C, H, W) float32 in [0, 1] -> ``{output name: (N, classes)}`` for ``mode``, batched with others."""
        outputs = await self.batchers[mode].submit(images, self.cfg.timeout_s)
        return dict(zip(output_names(mode), outputs))

    def stats(self) -> dict[str, dict]:
        """Per-mode counters (requests, runs, images per run, queue and compute seconds, rejections)."""
        return {mode: b.stats.to_dict() for mode, b in self.batchers.items()}


class EngineHolder:
    """The per-process slot for the engine: set by the service's ``__init__``, read by routes and middleware."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.in_flight = 0  # POST requests inside the server now (the guard counts them; the drain waits on them)

    def require(self) -> Engine:
        """The engine, or ``Overloaded('starting')`` while the worker is still loading it."""
        if self.engine is None:
            raise Overloaded("starting", "the model is still loading; retry shortly")
        return self.engine
