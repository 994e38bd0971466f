"""Per-mode request batching in the process that owns the ONNX Runtime sessions.

Each request mode (``main``, ``second``, ``merged``, ``all``) has one ``Batcher``: a bounded queue of
requests and one worker task. The worker takes the first waiting request, keeps collecting for at most
``max_wait_s`` or until ``max_batch`` images (not at all when no other request is in the server, so a
lone client pays no batching delay), runs one ``session.run`` on a thread (off the event loop,
so parsing and answering continue meanwhile), and splits the outputs back to the requests.

Load is shed, never queued forever: a full queue refuses at once (``Overloaded("queue_full")``, HTTP 503 with
Retry-After) and a request past its deadline ``Overloaded("deadline")`` (HTTP 504); a request that times
out while queued is skipped, so it never costs a model run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("bentoml.dhat")

RunFn = Callable[[np.ndarray], list[np.ndarray]]
"""(N, C, H, W) float32 images -> the graph's outputs, each (N, ...), in the contract's order."""


class Overloaded(RuntimeError):
    """A request refused to protect the service: ``reason`` is ``queue_full`` or ``deadline``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def status(self) -> int:
        """The HTTP answer: 504 for a missed deadline, else 503 (to be sent with Retry-After)."""
        return 504 if self.reason == "deadline" else 503


@dataclass
class Pending:
    """One request waiting in a queue: its images, where its answer goes, when it arrived."""

    images: np.ndarray
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """What the metrics report per mode (a Triton user reads the same from its statistics endpoint)."""

    requests: int = 0
    runs: int = 0
    images: int = 0
    queue_seconds: float = 0.0
    compute_seconds: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, float | int | dict[str, int]]:
        """The numbers as JSON, named as Triton's statistics name them (an execution is one ``session.run``)."""
        return {"request_count": self.requests, "execution_count": self.runs, "inference_count": self.images,
                "images_per_execution": self.images / self.runs if self.runs else 0.0,
                "queue_seconds_total": self.queue_seconds, "compute_seconds_total": self.compute_seconds,
                "rejected": dict(self.rejected)}


class Batcher:
    """A bounded queue of requests for one mode and the worker that batches them into ``run`` calls."""

    def __init__(self, name: str, run: RunFn, executor: Executor, max_batch: int, max_wait_s: float, queue_size: int,
                 observe: Callable[[str, str, float], None] | None = None,
                 in_flight: Callable[[], int] | None = None) -> None:
        self.name, self.run, self.executor = name, run, executor
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=queue_size)
        self.stats = BatchStats()
        self.observe = observe or (lambda kind, mode, value: None)
        self.in_flight = in_flight  # requests inside the server; none beyond this batch -> no reason to wait
        self._carry: Pending | None = None
        self._worker: asyncio.Task | None = None

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    def reject(self, reason: str) -> None:
        """Count a refused request (queue full, deadline, too many in flight) for the metrics."""
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
        self.observe(f"rejected:{reason}", self.name, 1.0)

    async def submit(self, images: np.ndarray, timeout_s: float) -> list[np.ndarray]:
        """The outputs for ``images`` (N, C, H, W) once their batch has run; ``Overloaded`` when refused."""
        self._ensure_worker()
        pending = Pending(images, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.reject("queue_full")
            raise Overloaded("queue_full", f"mode {self.name}: the queue is full "
                             f"({self.queue.maxsize} requests waiting); retry shortly") from None
        self.stats.requests += 1
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout_s)
        except asyncio.TimeoutError:
            pending.future.cancel()  # the worker skips it if it has not run yet
            self.reject("deadline")
            raise Overloaded("deadline", f"mode {self.name}: no answer within the {timeout_s:g} s deadline") from None

    async def _next(self) -> Pending:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        return await self.queue.get()

    async def _collect(self) -> list[Pending]:
        """The next batch: the first live request, then more until ``max_batch`` images or ``max_wait_s``."""
        first = await self._next()
        while first.future.done():  # cancelled while queued: costs nothing
            first = await self._next()
        batch, count = [first], len(first.images)
        deadline = time.perf_counter() + self.max_wait_s
        while count < self.max_batch:
            if self.queue.empty() and self.in_flight is not None and self.in_flight() <= len(batch):
                break  # nobody else is in the server: waiting max_wait_s would only add latency
            remaining = deadline - time.perf_counter()
            try:
                item = self.queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self.queue.get(), remaining)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if item.future.done():
                continue
            if count + len(item.images) > self.max_batch:
                self._carry = item  # first of the next batch; never split a request
                break
            batch.append(item)
            count += len(item.images)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            start = time.perf_counter()
            for item in batch:
                self.observe("queue", self.name, start - item.enqueued)
                self.stats.queue_seconds += start - item.enqueued
            images = batch[0].images if len(batch) == 1 else np.concatenate([b.images for b in batch])
            try:
                outputs = await loop.run_in_executor(self.executor, self.run, images)
            except Exception as exc:  # noqa: BLE001 - a failed run fails its requests, not the worker
                log.error("mode %s: session.run failed on %d images: %s", self.name, len(images), exc)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            seconds = time.perf_counter() - start
            self.stats.runs += 1
            self.stats.images += len(images)
            self.stats.compute_seconds += seconds
            self.observe("compute", self.name, seconds)
            self.observe("batch", self.name, float(len(images)))
            offset = 0
            for item in batch:
                n = len(item.images)
                if not item.future.done():
                    item.future.set_result([o[offset : offset + n] for o in outputs])
                offset += n
