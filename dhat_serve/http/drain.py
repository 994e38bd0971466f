"""SIGTERM: stop accepting connections, answer every request already received, then exit.

uvicorn's own graceful shutdown (inside each BentoML worker) closes at once every connection that has
no request cycle *yet*, including connections whose request bytes have arrived but were not parsed
(the event loop was busy with other requests): under load those clients see a reset. Measured before
this module: 300 requests of 64 images, SIGTERM one second in, 77 to 300 of them reset.

``Drain.install`` replaces the worker's SIGTERM handler with one that at once turns readiness to 503
(``ProcessState.draining``: the load balancer or Kubernetes stops routing here, which takes it seconds),
keeps accepting and serving for ``delay_s`` (``DHAT_DRAIN_DELAY_S``) so clients routed here meanwhile are
answered, then closes the listening sockets (no new connections), then waits until no request has been in flight for
``quiet_s`` seconds
(at most ``grace_s``), so buffered requests are read and answered, and only then hands over to
uvicorn's handler. Other listeners of the worker (the gRPC server) register a stop in ``on_close``:
it is called with ``grace_s`` when the HTTP sockets close, and its RPCs in flight count like HTTP requests.
A second SIGTERM (a signal to the whole process group also reaches the arbiter,
which forwards one) is ignored while draining.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dhat_serve.state import ProcessState

log = logging.getLogger("bentoml.dhat")


class Drain:
    """The drain of one worker: whether it is draining, and the process state whose requests it waits for."""

    def __init__(self, state: ProcessState, grace_s: float, quiet_s: float = 1.0, delay_s: float = 0.0) -> None:
        self.state, self.grace_s, self.quiet_s, self.delay_s = state, grace_s, quiet_s, delay_s
        self.draining = False
        self.on_close: list[Callable[[float], Awaitable[None]]] = []  # other listeners' stops (gRPC)

    def install(self) -> bool:
        """Take over SIGTERM from uvicorn (call from the worker's event loop); False if uvicorn's handler is absent."""
        original = signal.getsignal(signal.SIGTERM)
        server = getattr(original, "__self__", None)  # uvicorn.Server.handle_exit, bound
        if server is None or not callable(original):
            log.warning("SIGTERM handler is not uvicorn's (%r); shutdown will not drain", original)
            return False
        loop = asyncio.get_running_loop()

        def on_sigterm(sig: int, frame: Any) -> None:
            if self.draining:
                return
            self.draining = self.state.draining = True  # readiness 503 from now on, before anything closes
            loop.call_soon_threadsafe(lambda: loop.create_task(self.drain(server, original, sig, frame)))

        signal.signal(signal.SIGTERM, on_sigterm)
        return True

    async def drain(self, server: Any, original: Callable, sig: int, frame: Any) -> None:
        """Keep accepting for ``delay_s`` (connections already on their way), stop listening, wait for
        ``quiet_s`` without requests in flight (at most ``grace_s``), then exit."""
        if self.delay_s > 0:
            log.info("SIGTERM: still accepting for %g s before closing the listening sockets", self.delay_s)
            await asyncio.sleep(self.delay_s)
        for listener in getattr(server, "servers", []):
            listener.close()
        stops = [asyncio.ensure_future(stop(self.grace_s)) for stop in self.on_close]
        log.info("SIGTERM: no new connections; answering the requests already received (at most %g s)", self.grace_s)
        start = time.monotonic()
        quiet_since: float | None = None
        while time.monotonic() - start < self.grace_s:
            now = time.monotonic()
            if self.state.in_flight == 0:
                quiet_since = quiet_since or now
                if now - quiet_since >= self.quiet_s:
                    break
            else:
                quiet_since = None
            await asyncio.sleep(0.05)
        if stops:
            await asyncio.wait(stops, timeout=max(0.0, self.grace_s - (time.monotonic() - start)))
        log.info("SIGTERM: drained after %.1f s; shutting down", time.monotonic() - start)
        original(sig, frame)
