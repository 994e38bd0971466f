"""The per-mode batcher without a server: batching, bounded queue, deadlines, failures."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from dhat_serve.batching import Batcher
from dhat_serve.errors import InferenceFailed, Overloaded


def _batcher(run, **kw) -> Batcher:
    args = {"max_batch": 8, "max_wait_s": 0.02, "queue_size": 64, **kw}
    return Batcher("main", run, ThreadPoolExecutor(1), **args)


def test_concurrent_requests_share_a_run_and_get_their_own_rows():
    calls = []

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(len(x))
        return {"logits": x.reshape(len(x), -1).sum(1, keepdims=True)}

    async def scenario():
        b = _batcher(run)
        xs = [np.full((n, 1, 2, 2), i, np.float32) for i, n in enumerate((1, 2, 3, 1, 1))]
        return await asyncio.gather(*(b.submit(x, 5) for x in xs)), b

    outs, b = asyncio.run(scenario())
    assert [o["logits"][:, 0].tolist() for o in outs] == [[0.0], [4.0, 4.0], [8.0] * 3, [12.0], [16.0]]
    assert sum(calls) == 8 and len(calls) < 5  # batched
    assert max(calls) <= 8 and b.stats.images == 8 and b.stats.runs == len(calls)


def test_a_request_is_never_split_across_runs():
    calls = []

    def run(x):
        calls.append(len(x))
        return {"logits": x[:, :1, 0, 0]}

    async def scenario():
        b = _batcher(run, max_batch=4)
        await asyncio.gather(*(b.submit(np.zeros((3, 1, 1, 1), np.float32), 5) for _ in range(3)))

    asyncio.run(scenario())
    assert calls == [3, 3, 3]


async def _until(condition, what: str) -> None:
    """Yield to the loop until ``condition()`` holds (a bound of 10 s turns a hang into a failure naming ``what``)."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0)
    assert condition(), what


def test_a_full_queue_refuses_at_once():
    started, gate = threading.Event(), threading.Event()

    def run(x):
        started.set()
        gate.wait(10)
        return {"logits": x}

    async def scenario():
        b = _batcher(run, queue_size=2, max_batch=1)
        first = asyncio.create_task(b.submit(np.zeros((1, 1, 1, 1), np.float32), 5))
        await asyncio.to_thread(started.wait, 10)  # the worker is now blocked in run
        waiting = [asyncio.create_task(b.submit(np.zeros((1, 1, 1, 1), np.float32), 5)) for _ in range(2)]
        await _until(lambda: b.queue.full(), "two requests waiting")
        # at once: refused while the run still blocks (the gate opens only after), so it never waited for room
        with pytest.raises(Overloaded) as exc:
            await asyncio.wait_for(b.submit(np.zeros((1, 1, 1, 1), np.float32), 5), 5)
        assert not gate.is_set()
        gate.set()
        await asyncio.gather(first, *waiting)
        return exc.value, b

    exc, b = asyncio.run(scenario())
    assert exc.reason == "queue_full" and "queue is full (2 requests waiting)" in str(exc)
    assert b.stats.rejected == {"queue_full": 1}


def test_a_deadline_is_a_timeout_and_the_request_never_runs():
    ran, started, gate = [], threading.Event(), threading.Event()

    def run(x):
        started.set()
        gate.wait(10)  # the first run holds the worker until the second request's deadline has passed
        ran.append(len(x))
        return {"logits": x}

    async def scenario():
        b = _batcher(run, max_batch=1)
        slow = asyncio.create_task(b.submit(np.zeros((1, 1, 1, 1), np.float32), 5))
        await asyncio.to_thread(started.wait, 10)
        with pytest.raises(Overloaded, match="deadline"):
            await b.submit(np.zeros((2, 1, 1, 1), np.float32), 0.05)
        gate.set()
        await slow
        await b.submit(np.zeros((3, 1, 1, 1), np.float32), 5)  # FIFO: the expired request was dealt with before
        return b

    b = asyncio.run(scenario())
    assert ran == [1, 3] and b.stats.rejected == {"deadline": 1}  # the timed-out 2-image request never ran


def test_a_failed_run_fails_its_requests_and_the_worker_goes_on():
    state = {"n": 0}

    def run(x):
        state["n"] += 1
        if state["n"] == 1:
            raise RuntimeError("boom")
        return {"logits": x}

    async def scenario():
        b = _batcher(run, max_batch=1)
        with pytest.raises(InferenceFailed, match="the model run failed on a batch of 1 images \\(RuntimeError\\)"):
            await b.submit(np.zeros((1, 1, 1, 1), np.float32), 5)
        return await b.submit(np.ones((1, 1, 1, 1), np.float32), 5)

    assert asyncio.run(scenario())["logits"].item() == 1.0


def test_one_observer_counts_what_the_batchers_and_the_guard_report():
    from dhat_serve.observer import Observer

    observer = Observer()

    async def scenario():
        b = Batcher("second", lambda x: {"logits": x}, ThreadPoolExecutor(1), 8, 0.01, 4, observer, lambda: 3)
        await asyncio.gather(*(b.submit(np.zeros((2, 1, 1, 1), np.float32), 5) for _ in range(3)))
        return b

    b = asyncio.run(scenario())
    stats = observer.to_dict("second")
    assert stats["request_count"] == 3 and stats["inference_count"] == 6 and stats["execution_count"] == b.stats.runs
    assert b.stats is observer.of("second")  # the batcher's view is the observer's numbers
    observer.rejected("any", "max_concurrency")
    assert observer.to_dict("any")["rejected"] == {"max_concurrency": 1}


def test_a_missing_service_is_a_503_starting():
    from dhat_serve.service import current_plane

    with pytest.raises(Overloaded, match="still loading") as exc:
        current_plane()
    assert exc.value.status == 503 and exc.value.reason == "starting"


def test_a_worker_that_dies_fails_every_waiting_request_at_once():
    """A bug in the batching loop must not leave requests to their deadline: they fail with a 500 at once."""

    async def scenario():
        b = _batcher(lambda x: {"logits": x}, max_wait_s=0.5)

        async def broken():
            raise RuntimeError("bug in the loop")

        b._collect = broken  # the worker raises before it takes anything from the queue
        start = time.perf_counter()
        results = await asyncio.gather(
            *(b.submit(np.zeros((1, 1, 1, 1), np.float32), 30) for _ in range(3)), return_exceptions=True
        )
        return results, time.perf_counter() - start

    results, seconds = asyncio.run(scenario())
    assert all(isinstance(r, InferenceFailed) and "batching worker stopped" in str(r) for r in results), results
    assert seconds < 5 and results[0].status == 500


@pytest.mark.parametrize(
    "inline_s, run_s, in_flight, expected",
    [
        (0.5, 0.0, 1, ["ort", "loop", "loop"]),  # fast and alone: the first run measures, then no hand-off
        (0.0, 0.0, 1, ["ort", "ort", "ort"]),  # DHAT_INLINE_RUN_MS=0: always the thread
        (0.01, 0.05, 1, ["ort", "ort", "ort"]),  # a run longer than the limit never stalls the loop
        (0.5, 0.0, 2, ["ort", "ort", "ort"]),  # someone else in the server: the loop stays free for them
    ],
)
def test_a_lone_fast_request_runs_on_the_loop_and_anything_else_on_the_thread(inline_s, run_s, in_flight, expected):
    where = []

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        where.append("loop" if threading.current_thread() is threading.main_thread() else "ort")
        time.sleep(run_s)
        return {"logits": x}

    async def scenario():
        b = Batcher(
            "main",
            run,
            ThreadPoolExecutor(1, thread_name_prefix="ort"),
            8,
            0.0,
            4,
            in_flight=lambda: in_flight,
            inline_s=inline_s,
        )
        return [(await b.submit(np.full((1, 1, 2, 2), i, np.float32), 5))["logits"][0, 0, 0, 0] for i in range(3)]

    assert asyncio.run(scenario()) == [0.0, 1.0, 2.0]
    assert where == expected
