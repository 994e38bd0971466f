"""The engine: the artifact's sessions and one batcher per request mode, in the process that parses requests.

The data plane (``dataplane.DataPlane``, which every protocol calls) calls ``Engine.infer(mode, images)`` and
gets ``{output name: (N, classes)}`` as ``ModelRuntime.run`` returns it (``contract.REQUEST_OUTPUTS``); the data
plane selects what the request asked for, once. Nothing is re-keyed on the way out and nothing crosses a process
boundary between the socket and ``session.run``.

The head-disagreement monitor costs no model time: a ``merged`` run asks ``merged.onnx`` for the two
heads' logits as well (it computes them anyway, the merger reads them), counts the images whose heads'
argmax differ (``Observer.heads``: ``dhat_heads_disagree_total``); the data plane answers only ``logits``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from dhat_serve.batching import Batcher
from dhat_serve.card import CARD_FILE, Card, load_card
from dhat_serve.config import ServeConfig
from dhat_serve.contract import ALL, MAIN_LOGITS, MERGED, SECOND_LOGITS, request_graph
from dhat_serve.observer import Observer
from dhat_serve.runtime import ModelRuntime, gpu_count, worker_device

log = logging.getLogger("bentoml.dhat")  # under "bentoml" so BentoML's log configuration shows it


class Engine:
    """Sessions plus per-request-mode batchers; ``infer`` is the only way a request reaches ONNX Runtime."""

    def __init__(
        self,
        runtime: ModelRuntime,
        cfg: ServeConfig,
        observer: Observer,
        in_flight: Callable[[], int] | None = None,
        card: Card | None = None,
    ) -> None:
        self.runtime, self.cfg, self.observer, self.card = runtime, cfg, observer, card
        modes = runtime.manifest.request_modes  # four, or main alone for a single-head artifact
        self.executor = ThreadPoolExecutor(max_workers=len(modes), thread_name_prefix="ort")
        self.batchers = {
            mode: Batcher(
                mode,
                partial(self.run, mode),
                self.executor,
                cfg.batch_size,
                cfg.max_wait_ms / 1000,
                cfg.queue_size,
                observer,
                in_flight,
                cfg.inline_run_ms / 1000,
            )
            for mode in modes
        }

    @classmethod
    def load(
        cls,
        artifact_dir: Path,
        cfg: ServeConfig,
        observer: Observer,
        in_flight: Callable[[], int] | None = None,
        worker_index: int | None = None,
    ) -> Engine:
        """Verify and open the artifact with serving thread settings on this worker's GPU (``worker_device``),
        check its robustness card (``card.load_card``: refused when it measured other graphs or was edited), put the
        card's numbers on the observer's gauges, and log the provider and device of each session once."""
        device_id = worker_device(worker_index, cfg.gpu_ids(gpu_count())) if cfg.provider != "cpu" else 0
        runtime = ModelRuntime.load(artifact_dir, cfg.provider, device_id=device_id, intra_op_threads=cfg.ort_threads())
        card = load_card(artifact_dir, runtime.manifest)
        observer.robustness(card.gauges() if card else [])
        log.info("robustness card: %s", f"{CARD_FILE} of {card.doc['date']}" if card else "none (not evaluated)")
        for mode, providers in runtime.providers().items():
            where = f"device {device_id}" if providers and providers[0] == "CUDAExecutionProvider" else "the CPU"
            log.info(
                "worker %s, mode %s: %s runs on %s, %s (%d intra-op threads, spinning off)",
                worker_index or 1,
                mode,
                runtime.manifest.modes[mode].file,
                ", ".join(providers),
                where,
                cfg.ort_threads(),
            )
        return cls(runtime, cfg, observer, in_flight, card)

    async def warm_up(self, sizes: tuple[int, ...]) -> float:
        """Run every request mode once per batch size in ``sizes`` (zeros, off the event loop); the caller marks the
        worker warm after it, so readiness turns 200 only once the first real requests pay no session warm-up
        (on CUDA, cuDNN's per-shape algorithm search). Returns the seconds it took, as the log says."""
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        shape = self.runtime.manifest.input_shape
        for mode in self.batchers:
            for n in sizes:
                await loop.run_in_executor(self.executor, self.runtime.run, mode, np.zeros((n, *shape), np.float32))
        seconds = time.perf_counter() - start
        log.info("warm-up: %d modes x batch sizes %s in %.2f s; ready", len(self.batchers), list(sizes), seconds)
        return seconds

    def run(self, mode: str, images: np.ndarray) -> dict[str, np.ndarray]:
        """One ``session.run`` for a batch (on an executor thread). A mode of ``merged.onnx`` (merged, all) runs it
        for the heads' logits too and counts their disagreement; its outputs include them, and the data plane
        answers what the request asked for."""
        if request_graph(mode) != MERGED:
            return self.runtime.run(mode, images)
        outputs = self.runtime.run(ALL, images)
        disagree = int(np.count_nonzero(outputs[MAIN_LOGITS].argmax(1) != outputs[SECOND_LOGITS].argmax(1)))
        self.observer.heads(mode, len(images), disagree)
        return outputs

    async def infer(self, mode: str, images: np.ndarray, timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """(N, C, H, W) float32 in [0, 1] -> ``{output name: (N, classes)}``, batched with other requests.

        The deadline is ``DHAT_TIMEOUT_S``, or the request's own ``timeout_s`` when that is shorter."""
        deadline = self.cfg.timeout_s if timeout_s is None else min(timeout_s, self.cfg.timeout_s)
        return await self.batchers[mode].submit(images, deadline)

    def artifact(self) -> dict[str, str]:
        """The served artifact's name and version, as every answer carries it."""
        return {"name": self.runtime.manifest.name, "version": self.runtime.manifest.version}
