"""What one worker process counts about itself: requests in flight, warm, draining; passed, never imported.

The data plane (``dataplane``) counts requests in flight into it, the batchers read that count through a
callable they are given (no one else waiting -> no batching delay), the drain waits on it, and every
readiness check reads ``ready``. It holds no engine: the data plane is created with its engine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ProcessState:
    """This worker's requests inside the data plane now, and whether it is warm and whether it is draining."""

    in_flight: int = 0
    warm: bool = False  # every mode has run its warm-up batches (``Engine.warm_up``)
    draining: bool = False  # SIGTERM arrived: readiness says 503 at once, while requests are still served

    @property
    def ready(self) -> bool:
        """What every readiness check answers (``/readyz``, ``/v2/health/ready``, gRPC ServerReady / ModelReady):
        warm and not shutting down. Liveness is not this: a draining server is alive."""
        return self.warm and not self.draining
