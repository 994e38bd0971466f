"""The one observer of what happens to requests: batcher events and request outcomes, typed.

The batchers, the guard and the typed APIs call ``Observer``'s methods; it keeps the per-mode numbers
the Open Inference Protocol's statistics endpoint reports (``BatchStats``, named as Triton names them)
and, when the service gives it Prometheus instruments (``Prometheus``), feeds ``/metrics`` from the
same calls. One event, one call, two views that cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECONDS_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ANY_MODE = "any"
"""The mode label of a refusal made before the request's mode is known (the guard's 429)."""


@dataclass
class BatchStats:
    """What the statistics endpoint reports per mode (a Triton user reads the same from its statistics)."""

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


class Prometheus:
    """The service's Prometheus instruments (``bentoml.metrics``), created once per worker process."""

    def __init__(self) -> None:
        import bentoml  # the service's dependency; the batcher and its tests need no Prometheus

        m = bentoml.metrics
        self.requests = m.Counter(name="dhat_requests", documentation="Requests by endpoint, mode and outcome",
                                  labelnames=["endpoint", "mode", "outcome"])
        self.latency = m.Histogram(name="dhat_request_latency_seconds", documentation="Request latency by mode",
                                   labelnames=["endpoint", "mode"],
                                   buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self.queue = m.Histogram(name="dhat_queue_seconds", documentation="Time a request waited for its batch",
                                 labelnames=["mode"], buckets=SECONDS_BUCKETS)
        self.compute = m.Histogram(name="dhat_compute_seconds", documentation="Seconds per ONNX Runtime run",
                                   labelnames=["mode"], buckets=SECONDS_BUCKETS)
        self.batch = m.Histogram(name="dhat_onnx_batch_images", documentation="Images per ONNX Runtime call",
                                 labelnames=["mode"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.rejected = m.Counter(name="dhat_rejected", documentation="Requests refused by reason",
                                  labelnames=["mode", "reason"])


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

    def queued(self, mode: str, seconds: float) -> None:
        """A request waited ``seconds`` in the queue before its batch ran."""
        self.of(mode).queue_seconds += seconds
        if self.prometheus:
            self.prometheus.queue.labels(mode=mode).observe(seconds)

    def ran(self, mode: str, images: int, seconds: float) -> None:
        """One ``session.run`` of ``images`` images took ``seconds``."""
        stats = self.of(mode)
        stats.runs, stats.images, stats.compute_seconds = stats.runs + 1, stats.images + images, stats.compute_seconds + seconds
        if self.prometheus:
            self.prometheus.compute.labels(mode=mode).observe(seconds)
            self.prometheus.batch.labels(mode=mode).observe(float(images))

    def rejected(self, mode: str, reason: str) -> None:
        """A request refused for ``reason`` (queue_full, deadline, starting, max_concurrency)."""
        stats = self.of(mode)
        stats.rejected[reason] = stats.rejected.get(reason, 0) + 1
        if self.prometheus:
            self.prometheus.rejected.labels(mode=mode, reason=reason).inc()

    def answered(self, endpoint: str, mode: str, outcome: str, seconds: float | None = None) -> None:
        """A request left ``endpoint`` with ``outcome`` (``ok`` or a refusal's reason), after ``seconds`` if ok."""
        if not self.prometheus:
            return
        self.prometheus.requests.labels(endpoint=endpoint, mode=mode, outcome=outcome).inc()
        if seconds is not None:
            self.prometheus.latency.labels(endpoint=endpoint, mode=mode).observe(seconds)

    def to_dict(self, mode: str) -> dict[str, Any]:
        """``mode``'s numbers as the statistics endpoint sends them."""
        return self.of(mode).to_dict()
