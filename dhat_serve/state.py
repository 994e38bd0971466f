"""The state one worker process shares between its parts, as one typed object passed to each.

The BentoML service creates the engine when its worker starts, but BentoML builds the ASGI middleware
and the mounted app at import time. ``ProcessState`` is what both are given: the guard (HTTP) and the
gRPC server count requests in flight into it (``enter`` / ``leave``), the batchers read that count (no one else waiting -> no batching delay), the drain
waits on it, and the protocol routes take the engine from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dhat_serve.errors import Overloaded, TooManyRequests
from dhat_serve.observer import ANY_MODE, Observer

if TYPE_CHECKING:
    from dhat_serve.engine import Engine


@dataclass
class ProcessState:
    """This worker's engine (None while loading), requests inside the server now, and the observer."""

    observer: Observer = field(default_factory=Observer)
    engine: Engine | None = None
    in_flight: int = 0
    warm: bool = False  # every mode has run its warm-up batches (``Engine.warm_up``)
    draining: bool = False  # SIGTERM arrived: readiness says 503 at once, while requests are still served

    @property
    def ready(self) -> bool:
        """What every readiness check answers (``/readyz``, ``/v2/health/ready``, gRPC ServerReady / ModelReady):
        loaded and warm, and not shutting down. Liveness is not this: a draining server is alive."""
        return self.engine is not None and self.warm and not self.draining

    def over_capacity(self, max_concurrency: int) -> TooManyRequests | None:
        """The refusal (429 / RESOURCE_EXHAUSTED) for a request that would be one too many in flight, counted as
        rejected; None when it may enter. One rule for HTTP (``guard``) and gRPC (``grpc_server``)."""
        if self.in_flight < max_concurrency:
            return None
        self.observer.rejected(ANY_MODE, TooManyRequests.reason)
        return TooManyRequests(f"more than {max_concurrency} requests in flight; retry shortly")

    def enter(self) -> None:
        """A request (any protocol) is now inside this worker: the batchers, the drain and the gauge see it."""
        self.in_flight += 1
        self.observer.in_flight(self.in_flight)

    def leave(self) -> None:
        """That request has been answered."""
        self.in_flight -= 1
        self.observer.in_flight(self.in_flight)

    def require(self) -> Engine:
        """The engine, or ``Overloaded('starting')`` (503 + Retry-After) while the worker is still loading it."""
        if self.engine is None:
            raise Overloaded("starting", "the model is still loading; retry shortly")
        return self.engine
