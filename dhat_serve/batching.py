"""Per-mode request batching in the process that owns the ONNX Runtime sessions.

Each request mode (``main``, ``second``, ``merged``, ``all``) has one ``Batcher``: a bounded queue of
requests and one worker task. The worker takes the first waiting request, keeps collecting for at most
``max_wait_s`` or until ``max_batch`` images (not at all when no other request is in the server, so a
lone client pays no batching delay), runs one ``session.run`` on a thread (off the event loop,
so parsing and answering continue meanwhile; a lone request whose mode runs in under ``inline_s`` runs on
the loop itself, as nothing else waits), and splits the outputs back to the requests.

Load is shed, never queued forever: a full queue refuses at once (``errors.Overloaded("queue_full")``,
HTTP 503 with Retry-After) and a request past its deadline ``Overloaded("deadline")`` (HTTP 504); a
request that times out while queued is skipped, so it never costs a model run. A failed run fails its
requests with ``errors.InferenceFailed`` (HTTP 500, counted as ``model_error``); a worker task that dies
fails every request still waiting instead of leaving them to their deadline. Every event goes to the
``Observer`` the batcher is given; ``in_flight`` (a callable) tells it how many requests are in the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from dhat_serve.errors import InferenceFailed, Overloaded
from dhat_serve.observer import BatchStats, Observer

log = logging.getLogger("bentoml.dhat")

RunFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]
"""(N, C, H, W) float32 images -> ``{output name: (N, ...)}`` (``ModelRuntime.run`` for one request mode)."""


@dataclass
class Pending:
    """One request waiting in a queue: its images, where its answer goes, when it arrived."""

    images: np.ndarray
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    deadline: float = float("inf")  # perf_counter time past which the request is answered 504


class BatchedRequests:
    """Requests merged into one (N, C, H, W) batch, and the split of the batch's outputs back to each of them."""

    def __init__(self, items: list[Pending]) -> None:
        self.items = items

    @functools.cached_property
    def images(self) -> np.ndarray:
        """The requests' images as one (N, C, H, W) batch (merged once, and only when a run needs it)."""
        items = self.items
        return items[0].images if len(items) == 1 else np.concatenate([i.images for i in items])

    def fail(self, exc: BaseException) -> None:
        """Every request of the batch that still waits gets ``exc``."""
        for item in self.items:
            if not item.future.done():
                item.future.set_exception(exc)

    def answer(self, outputs: Mapping[str, np.ndarray]) -> None:
        """Each request gets its own rows of every (N, ...) output, in the order the batch was merged."""
        offset = 0
        for item in self.items:
            n = len(item.images)
            if not item.future.done():
                item.future.set_result({name: out[offset : offset + n] for name, out in outputs.items()})
            offset += n


class Batcher:
    """A bounded queue of requests for one mode and the worker that batches them into ``run`` calls."""

    def __init__(
        self,
        mode: str,
        run: RunFn,
        executor: Executor,
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
        observer: Observer | None = None,
        in_flight: Callable[[], int] | None = None,
        inline_s: float = 0.0,
    ) -> None:
        self.mode, self.run, self.executor = mode, run, executor
        self.inline_s = inline_s  # a lone request's run this short (last time) runs on the loop itself; 0: never
        self._lone_run_s = float("inf")  # how long the last batch of one request took to run (unknown: the thread)
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=queue_size)
        self.observer = observer if observer is not None else Observer()
        self.in_flight = in_flight  # requests in the server (none beyond this batch -> no reason to wait)
        self._carry: Pending | None = None
        self._worker: asyncio.Task | None = None

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.mode}")
            self._worker.add_done_callback(self._on_worker_exit)

    def _on_worker_exit(self, task: asyncio.Task) -> None:
        """The worker ended (cancelled, or a bug raised): fail what waits now; the next ``submit`` starts a new one."""
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("mode %s: the batching worker died: %r", self.mode, exc)
        failure = InferenceFailed(f"mode {self.mode}: the batching worker stopped ({exc!r}); retry")
        waiting = [self._carry] if self._carry is not None else []
        self._carry = None
        while not self.queue.empty():
            waiting.append(self.queue.get_nowait())
        if waiting:
            BatchedRequests(waiting).fail(failure)

    @property
    def stats(self) -> BatchStats:
        """This mode's numbers, as the observer keeps them."""
        return self.observer.of(self.mode)

    async def submit(self, images: np.ndarray, timeout_s: float) -> dict[str, np.ndarray]:
        """The outputs for ``images`` (N, C, H, W) once their batch has run; ``Overloaded`` when refused."""
        self._ensure_worker()
        pending = Pending(images, asyncio.get_running_loop().create_future(), deadline=time.perf_counter() + timeout_s)
        try:
            self.queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.observer.rejected(self.mode, "queue_full")
            raise Overloaded(
                "queue_full",
                f"mode {self.mode}: the queue is full ({self.queue.maxsize} requests waiting); retry shortly",
            ) from None
        self.observer.enqueued(self.mode)
        self.observer.depth(self.mode, self.queue.qsize())
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout_s)
        except TimeoutError:
            pending.future.cancel()  # the worker skips it if it has not run yet
            self.observer.rejected(self.mode, "deadline")
            raise Overloaded("deadline", f"mode {self.mode}: no answer within the {timeout_s:g} s deadline") from None

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
                item = (
                    self.queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self.queue.get(), remaining)
                )
            except (TimeoutError, asyncio.QueueEmpty):
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
            batch = BatchedRequests(await self._collect())
            self.observer.depth(self.mode, self.queue.qsize())
            start = time.perf_counter()
            for item in batch.items:
                self.observer.queued(self.mode, start - item.enqueued)
            try:
                if self._alone(batch):
                    outputs = self._timed_run(batch)  # nobody else to serve meanwhile: no thread hand-off
                else:
                    outputs = await loop.run_in_executor(self.executor, self._timed_run, batch)
            except Exception as exc:
                log.error("mode %s: session.run failed on %d images: %s", self.mode, len(batch.images), exc)
                batch.fail(
                    InferenceFailed(
                        f"mode {self.mode}: the model run failed on a batch of "
                        f"{len(batch.images)} images ({type(exc).__name__})"
                    )
                )
                continue
            self.observer.ran(self.mode, len(batch.images), time.perf_counter() - start, len(batch.items))
            batch.answer(outputs)

    def _timed_run(self, batch: BatchedRequests) -> Mapping[str, np.ndarray]:
        """``run`` on the batch's images; a lone request's run time (the model's alone, no hand-off) is kept."""
        start = time.perf_counter()
        outputs = self.run(batch.images)
        if len(batch.items) == 1:
            self._lone_run_s = time.perf_counter() - start
        return outputs

    def _alone(self, batch: BatchedRequests) -> bool:
        """Whether to run ``batch`` on the event loop: one request, nobody else in the server or queued, and this
        mode's last lone run took at most ``inline_s``. A thread hand-off (executor queue, wake-up, the loop's
        self-pipe back) costs about as much as a small model's whole run (issue 30: 0.3-0.6 ms of a 1.2-2 ms
        answer at concurrency 1); a longer run stays on the thread so the loop never stalls for more than that.
        A request that would pass its deadline during the run goes to the thread too, where the deadline's timer
        can fire while it runs (on the loop it could not, and a late answer would be a 200 instead of a 504)."""
        return (
            len(batch.items) == 1
            and self.in_flight is not None
            and self.in_flight() <= 1
            and self.queue.empty()
            and self._lone_run_s <= self.inline_s
            and time.perf_counter() + self._lone_run_s < batch.items[0].deadline
        )  # else the thread: its 504
