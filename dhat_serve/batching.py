"""Per-mode request batching in the process that owns the ONNX Runtime sessions.

Each request mode (``main``, ``second``, ``merged``, ``all``) has one ``Batcher``: a bounded queue of
requests and one worker task. The worker takes the first waiting request, keeps collecting for at most
``max_wait_s`` or until ``max_batch`` images (not at all when no other request is in the server, so a
lone client pays no batching delay), runs one ``session.run`` on a thread (off the event loop,
so parsing and answering continue meanwhile), and splits the outputs back to the requests.

Load is shed, never queued forever: a full queue refuses at once (``errors.Overloaded("queue_full")``,
HTTP 503 with Retry-After) and a request past its deadline ``Overloaded("deadline")`` (HTTP 504); a
request that times out while queued is skipped, so it never costs a model run. Every event goes to the
process's ``Observer`` (statistics endpoint and Prometheus).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from dhat_serve.errors import Overloaded
from dhat_serve.observer import BatchStats, Observer
from dhat_serve.state import ProcessState

log = logging.getLogger("bentoml.dhat")

RunFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]
"""(N, C, H, W) float32 images -> ``{output name: (N, ...)}`` (``ModelRuntime.run`` for one request mode)."""


@dataclass
class Pending:
    """One request waiting in a queue: its images, where its answer goes, when it arrived."""

    images: np.ndarray
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    """A bounded queue of requests for one mode and the worker that batches them into ``run`` calls."""

    def __init__(self, name: str, run: RunFn, executor: Executor, max_batch: int, max_wait_s: float, queue_size: int,
                 state: ProcessState | None = None) -> None:
        self.name, self.run, self.executor = name, run, executor
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=queue_size)
        self.state = state  # requests in flight (none beyond this batch -> no reason to wait) and the observer
        self.observer = state.observer if state is not None else Observer()
        self._carry: Pending | None = None
        self._worker: asyncio.Task | None = None

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    @property
    def stats(self) -> BatchStats:
        """This mode's numbers, as the observer keeps them."""
        return self.observer.of(self.name)

    async def submit(self, images: np.ndarray, timeout_s: float) -> dict[str, np.ndarray]:
        """The outputs for ``images`` (N, C, H, W) once their batch has run; ``Overloaded`` when refused."""
        self._ensure_worker()
        pending = Pending(images, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.observer.rejected(self.name, "queue_full")
            raise Overloaded("queue_full", f"mode {self.name}: the queue is full "
                             f"({self.queue.maxsize} requests waiting); retry shortly") from None
        self.observer.enqueued(self.name)
        self.observer.depth(self.name, self.queue.qsize())
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout_s)
        except asyncio.TimeoutError:
            pending.future.cancel()  # the worker skips it if it has not run yet
            self.observer.rejected(self.name, "deadline")
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
            if self.queue.empty() and self.state is not None and self.state.in_flight <= len(batch):
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
            self.observer.depth(self.name, self.queue.qsize())
            start = time.perf_counter()
            for item in batch:
                self.observer.queued(self.name, start - item.enqueued)
            images = batch[0].images if len(batch) == 1 else np.concatenate([b.images for b in batch])
            try:
                outputs = await loop.run_in_executor(self.executor, self.run, images)
            except Exception as exc:  # noqa: BLE001 - a failed run fails its requests, not the worker
                log.error("mode %s: session.run failed on %d images: %s", self.name, len(images), exc)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.observer.ran(self.name, len(images), time.perf_counter() - start, len(batch))
            offset = 0
            for item in batch:
                n = len(item.images)
                if not item.future.done():
                    item.future.set_result({name: out[offset : offset + n] for name, out in outputs.items()})
                offset += n
