"""The one observer of what happens to requests: batcher events and request outcomes, typed.

The batchers, the engine, the guard and every protocol's handler call ``Observer``'s methods; it keeps
the per-mode numbers the Open Inference Protocol's statistics endpoint reports (``BatchStats``, in
Triton's statistics schema) and, when the service gives it Prometheus instruments (``Prometheus``),
feeds ``/metrics`` from the same calls. One event, one call, two views that cannot disagree.
``observed`` is the one wrapper every protocol's request goes through, so each protocol's requests,
latency and outcome are counted the same way.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dhat_serve.errors import Refusal

T = TypeVar("T")
PROTOCOLS = ("classify", "predict", "predict_npy", "oip_http", "oip_grpc")
"""The ``endpoint`` label of every way a request arrives (``dhat_requests_total{endpoint=...}``)."""

SECONDS_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ANY_MODE = "any"
"""The mode label of a refusal made before the request's mode is known (the guard's 429)."""


class Tally:
    """A count and the nanoseconds it took, as Triton's statistics pair them (``{"count", "ns"}``)."""

    __slots__ = ("count", "ns")

    def __init__(self) -> None:
        self.count, self.ns = 0, 0

    def add(self, count: int, ns: int) -> None:
        """``count`` more events that took ``ns`` nanoseconds in all."""
        self.count, self.ns = self.count + count, self.ns + ns

    def to_dict(self) -> dict[str, int]:
        """Triton's ``{"count": ..., "ns": ...}``."""
        return {"count": self.count, "ns": self.ns}


@dataclass
class BatchStats:
    """What the statistics endpoint reports per mode (a Triton user reads the same from its statistics).

    Each time is kept once, in nanoseconds: ``queue`` (requests dequeued, the time they waited), ``compute``
    (requests run, the time of the run each was in: Triton charges a batched run to every request in it),
    ``batches`` (images per run -> runs, their time), ``success`` / ``fail`` (requests answered / refused, their
    time); the seconds totals of ``to_dict`` are read from them."""

    requests: int = 0
    runs: int = 0
    images: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    success: Tally = field(default_factory=Tally)
    fail: Tally = field(default_factory=Tally)
    queue: Tally = field(default_factory=Tally)
    compute: Tally = field(default_factory=Tally)
    batches: dict[int, Tally] = field(default_factory=dict)
    last_inference_ms: int = 0
    heads_checked: int = 0  # images whose main and second logits were both computed (merged, all)
    heads_disagree: int = 0  # ... of which the two heads' argmax differ

    def to_dict(self) -> dict[str, float | int | dict[str, int]]:
        """The project's own numbers (an execution is one ``session.run``), beside Triton's in ``triton``."""
        return {
            "request_count": self.requests,
            "execution_count": self.runs,
            "inference_count": self.images,
            "images_per_execution": self.images / self.runs if self.runs else 0.0,
            "queue_seconds_total": self.queue.ns / 1e9,
            "compute_seconds_total": sum(t.ns for t in self.batches.values()) / 1e9,
            "rejected": dict(self.rejected),
            "heads_checked": self.heads_checked,
            "heads_disagree": self.heads_disagree,
        }

    def triton(self) -> dict[str, Any]:
        """Triton's per-model statistics (``model_stats[]``, minus name and version), as perf_analyzer reads them.

        ``inference_stats`` count requests (a batched run's time is charged to each request in it, as
        Triton does); ``batch_stats`` count runs per batch size. Input and output copies are not timed
        apart from the run, so ``compute_input`` and ``compute_output`` are 0 ns."""
        zero = {"count": self.compute.count, "ns": 0}
        return {
            "last_inference": self.last_inference_ms,
            "inference_count": self.images,
            "execution_count": self.runs,
            "inference_stats": {
                "success": self.success.to_dict(),
                "fail": self.fail.to_dict(),
                "queue": self.queue.to_dict(),
                "compute_input": zero,
                "compute_infer": self.compute.to_dict(),
                "compute_output": zero,
                "cache_hit": {"count": 0, "ns": 0},
                "cache_miss": {"count": 0, "ns": 0},
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": {"count": t.count, "ns": 0},
                    "compute_infer": t.to_dict(),
                    "compute_output": {"count": t.count, "ns": 0},
                }
                for size, t in sorted(self.batches.items())
            ],
        }


class Prometheus:
    """The service's Prometheus instruments (``bentoml.metrics``), created once per worker process.

    ``child`` keeps each labelled series once it is made: ``labels()`` takes a lock and checks its values on every
    call, and under load that lookup was the largest cost of counting (benchmarks/README.md, issue 30)."""

    def __init__(self) -> None:
        import bentoml  # the service's dependency; the batcher and its tests need no Prometheus

        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        m = bentoml.metrics
        self.requests = m.Counter(
            name="dhat_requests",
            documentation="Requests by endpoint, mode and outcome",
            labelnames=["endpoint", "mode", "outcome"],
        )
        self.latency = m.Histogram(
            name="dhat_request_latency_seconds",
            documentation="Request latency by mode",
            labelnames=["endpoint", "mode"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.queue = m.Histogram(
            name="dhat_queue_seconds",
            documentation="Time a request waited for its batch",
            labelnames=["mode"],
            buckets=SECONDS_BUCKETS,
        )
        self.compute = m.Histogram(
            name="dhat_compute_seconds",
            documentation="Seconds per ONNX Runtime run",
            labelnames=["mode"],
            buckets=SECONDS_BUCKETS,
        )
        self.batch = m.Histogram(
            name="dhat_onnx_batch_images",
            documentation="Images per ONNX Runtime call",
            labelnames=["mode"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.rejected = m.Counter(
            name="dhat_rejected", documentation="Requests refused by reason", labelnames=["mode", "reason"]
        )
        self.depth = m.Gauge(
            name="dhat_queue_depth", documentation="Requests waiting in each mode's queue now", labelnames=["mode"]
        )
        self.in_flight = m.Gauge(name="dhat_requests_in_flight", documentation="Requests inside this worker now")
        self.robust = m.Gauge(
            name="dhat_robust_accuracy",
            documentation="Accuracy of each mode under each attack of the artifact's robustness card (card.json)",
            labelnames=["mode", "attack"],
        )
        self.images_run = m.Counter(
            name="dhat_images", documentation="Images run through ONNX Runtime, by mode", labelnames=["mode"]
        )
        self.disagree = m.Counter(
            name="dhat_heads_disagree",
            labelnames=["mode"],
            documentation="Images whose main and second heads' argmax differ (merged, all)",
        )

    def child(self, metric: str, *labels: str) -> Any:
        """The series of instrument ``metric`` (an attribute name above) for ``labels``, in its labelnames' order."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = getattr(self, metric).labels(*labels)
        return found


class Observer:
    """Counts every batcher event and request outcome into ``BatchStats`` and, if given, Prometheus."""

    def __init__(self, prometheus: Prometheus | None = None) -> None:
        self.prometheus = prometheus
        self.stats: dict[str, BatchStats] = {}

    def of(self, mode: str) -> BatchStats:
        """The numbers of one mode (created on first use)."""
        return self.stats.setdefault(mode, BatchStats())

    def enqueued(self, mode: str) -> None:
        """A request entered ``mode``'s queue."""
        self.of(mode).requests += 1

    def depth(self, mode: str, waiting: int) -> None:
        """``waiting`` requests are in ``mode``'s queue now."""
        if self.prometheus:
            self.prometheus.child("depth", mode).set(waiting)

    def in_flight(self, count: int) -> None:
        """``count`` requests are inside this worker now (any protocol)."""
        if self.prometheus:
            self.prometheus.in_flight.set(count)

    def queued(self, mode: str, seconds: float) -> None:
        """A request waited ``seconds`` in the queue before its batch ran."""
        stats = self.of(mode)
        stats.queue.add(1, int(seconds * 1e9))
        if self.prometheus:
            self.prometheus.child("queue", mode).observe(seconds)

    def ran(self, mode: str, images: int, seconds: float, requests: int = 1) -> None:
        """One ``session.run`` of ``images`` images (from ``requests`` requests) took ``seconds``."""
        stats, ns = self.of(mode), int(seconds * 1e9)
        stats.runs, stats.images = stats.runs + 1, stats.images + images
        stats.compute.add(requests, requests * ns)
        stats.batches.setdefault(images, Tally()).add(1, ns)
        stats.last_inference_ms = int(time.time() * 1000)
        if self.prometheus:
            self.prometheus.child("compute", mode).observe(seconds)
            self.prometheus.child("batch", mode).observe(float(images))
            self.prometheus.child("images_run", mode).inc(images)

    def heads(self, mode: str, images: int, disagree: int) -> None:
        """Of ``images`` run through ``merged.onnx`` for ``mode``, the two heads' argmax differed on ``disagree``."""
        stats = self.of(mode)
        stats.heads_checked, stats.heads_disagree = stats.heads_checked + images, stats.heads_disagree + disagree
        if self.prometheus:
            self.prometheus.child("disagree", mode).inc(disagree)

    def rejected(self, mode: str, reason: str) -> None:
        """A request refused for ``reason`` (queue_full, deadline, starting, max_concurrency)."""
        stats = self.of(mode)
        stats.rejected[reason] = stats.rejected.get(reason, 0) + 1
        if self.prometheus:
            self.prometheus.child("rejected", mode, reason).inc()

    def robustness(self, rows: list[tuple[str, str, float]]) -> None:
        """The robustness card's ``(mode, attack, accuracy)`` rows (``Card.gauges``), once at start."""
        if self.prometheus:
            for mode, attack, accuracy in rows:
                self.prometheus.child("robust", mode, attack).set(accuracy)

    def answered(self, endpoint: str, mode: str, outcome: str, seconds: float) -> None:
        """A request left ``endpoint`` with ``outcome`` (``ok`` or a refusal's reason) after ``seconds``."""
        stats = self.of(mode)
        (stats.success if outcome == "ok" else stats.fail).add(1, int(seconds * 1e9))
        if not self.prometheus:
            return
        self.prometheus.child("requests", endpoint, mode, outcome).inc()
        if outcome == "ok":
            self.prometheus.child("latency", endpoint, mode).observe(seconds)

    def to_dict(self, mode: str) -> dict[str, Any]:
        """``mode``'s numbers as the statistics endpoint sends them."""
        return self.of(mode).to_dict()


async def observed(observer: Observer, endpoint: str, mode: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run one request's ``work`` and count it under ``endpoint`` (one of ``PROTOCOLS``) and ``mode``:
    ``ok`` with its latency, or the reason of the refusal it raised (re-raised for the protocol to answer)."""
    start = time.perf_counter()
    try:
        result = await work()
    except Refusal as exc:
        observer.answered(endpoint, mode, exc.reason, time.perf_counter() - start)
        raise
    observer.answered(endpoint, mode, "ok", time.perf_counter() - start)
    return result
