"""Serving limits and choices, read once from the environment into a frozen dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass

PROVIDER_CHOICES = ("auto", "cpu", "cuda")
"""What ``--provider`` / ``DHAT_PROVIDER`` accept: auto (CUDA when a GPU is visible), cpu or cuda."""


def comma_list(text: str) -> tuple[str, ...]:
    """The non-empty, stripped items of a comma-separated setting (``DHAT_API_KEYS``, ``DHAT_CORS_ORIGINS``)."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def env_flag(name: str) -> bool:
    """An on/off ``DHAT_*`` variable: 1, true or yes (any case) is on; unset or anything else is off."""
    return os.environ.get(name, "0").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class ServeConfig:
    """``DHAT_*`` environment variables with safe defaults (caps on what one request may cost)."""

    artifact: str | None = None  # DHAT_ARTIFACT: an artifact directory; unset -> BentoML model store dhat:latest
    provider: str = "auto"  # DHAT_PROVIDER: auto | cpu | cuda
    max_batch: int = 256  # DHAT_MAX_BATCH: images per request
    max_request_bytes: int = 16 * 1024 * 1024  # DHAT_MAX_REQUEST_BYTES: whole HTTP body
    max_image_pixels: int = 4096 * 4096  # DHAT_MAX_IMAGE_PIXELS: decoded width x height (decompression bombs)
    batch_size: int = 64  # DHAT_BATCH_SIZE: images per ONNX Runtime call (a request is never split)
    max_wait_ms: float = 2.0  # DHAT_MAX_WAIT_MS: how long a batch waits for more requests after the first
    # DHAT_INLINE_RUN_MS: a request alone in the server runs on the event loop, without the thread hand-off, when
    # its mode's last lone run took at most this long (a small model on the CPU); 0 = always on a thread
    inline_run_ms: float = 1.0
    queue_size: int = 256  # DHAT_QUEUE_SIZE: requests waiting per mode; beyond it 503 + Retry-After at once
    timeout_s: float = 30.0  # DHAT_TIMEOUT_S: a request's deadline (queue + run); beyond it 504
    max_concurrency: int = 512  # DHAT_MAX_CONCURRENCY: requests in flight per worker; beyond it 429
    workers: int = 1  # DHAT_WORKERS: BentoML worker processes, each with its own sessions
    intra_op_threads: int = 0  # DHAT_INTRA_OP_THREADS: ORT threads per session; 0 = cores / workers
    grace_s: float = 30.0  # DHAT_GRACE_S: after SIGTERM, how long accepted requests may take to finish
    # DHAT_KEEP_ALIVE_S: how long an idle HTTP connection stays open. Longer than the idle timeout of the load
    # balancers in front (AWS ALB: 60 s), so the server never closes a connection just as a client reuses it
    # (uvicorn's 5 s default lost 1 request in ~5 bursts of 1,500 that way: a ReadError, not an answer).
    keep_alive_s: int = 75
    # DHAT_DRAIN_DELAY_S: after SIGTERM, readiness is 503 at once but the server keeps accepting and serving this
    # long before it closes the listening sockets: Kubernetes removes a terminating pod from its endpoints
    # asynchronously and kube-proxy / ingresses take a few seconds to follow (kserve/kserve#3360), so clients
    # routed here meanwhile would otherwise be refused. 5 s covers that propagation on a healthy cluster (the
    # usual preStop sleep is 5-15 s); the pod's terminationGracePeriodSeconds must exceed delay + DHAT_GRACE_S.
    drain_delay_s: float = 5.0
    # DHAT_GRPC_PORT: the Open Inference Protocol over gRPC on this port in every worker (SO_REUSEPORT); 0 = off.
    # Off unless asked: a second open port is a second surface to secure and to route, and the default 8001 of
    # Triton would collide with a Triton on the same host. `dhat serve --grpc-port 8001` turns it on.
    grpc_port: int = 0
    # DHAT_WARMUP_BATCHES: batch sizes every mode runs once at start-up, before readiness turns 200: "auto"
    # (1 and DHAT_BATCH_SIZE, the sizes a lone request and a full batch use), a comma list, or "off".
    warmup_batches: str = "auto"
    grpc_host: str = "0.0.0.0"  # DHAT_GRPC_HOST: `dhat serve` sets it to its --host; BentoML's own default is 0.0.0.0
    gpus: str = (
        ""  # DHAT_GPUS: GPU ids the workers share, e.g. "0,1" (worker i takes the (i mod n)-th); empty -> all visible
    )
    api_keys: str = ""  # DHAT_API_KEYS: comma-separated keys (prefer the file); none -> every route is open
    api_keys_file: str | None = None  # DHAT_API_KEYS_FILE: one key per line, '#' comments
    protect_metrics: bool = False  # DHAT_PROTECT_METRICS=1: /metrics needs a key too (health probes never do)
    ssl_certfile: str | None = None  # DHAT_SSL_CERTFILE / DHAT_SSL_KEYFILE: TLS for HTTP (BentoML) and gRPC
    ssl_keyfile: str | None = None
    cors_origins: str = (
        ""  # DHAT_CORS_ORIGINS: comma-separated browser origins allowed to call the API; none -> no CORS
    )
    # DHAT_ACCESS_LOG=1: BentoML's access log, one line per request. Off by default: it formats and writes a
    # log record on the hot path of every request (benchmarks/README.md, issue 30, says what it cost);
    # dhat_requests_total and the latency histograms count every request either way.
    access_log: bool = False
    # DHAT_TRACING=1: BentoML's OpenTelemetry spans for every HTTP request (configure the exporter in BentoML's
    # own config). Off by default: without an exporter the middleware still builds three spans per request
    # (about a fifth of the event loop's time under load, benchmarks/README.md); off, it passes requests through.
    tracing: bool = False

    @classmethod
    def from_env(cls) -> ServeConfig:
        """Read every ``DHAT_*`` variable once; unset ones keep the defaults above."""
        env = os.environ
        return cls(
            artifact=env.get("DHAT_ARTIFACT") or None,
            provider=env.get("DHAT_PROVIDER", "auto"),
            max_batch=int(env.get("DHAT_MAX_BATCH", cls.max_batch)),
            max_request_bytes=int(env.get("DHAT_MAX_REQUEST_BYTES", cls.max_request_bytes)),
            max_image_pixels=int(env.get("DHAT_MAX_IMAGE_PIXELS", cls.max_image_pixels)),
            batch_size=int(env.get("DHAT_BATCH_SIZE", cls.batch_size)),
            max_wait_ms=float(env.get("DHAT_MAX_WAIT_MS", cls.max_wait_ms)),
            inline_run_ms=float(env.get("DHAT_INLINE_RUN_MS", cls.inline_run_ms)),
            queue_size=int(env.get("DHAT_QUEUE_SIZE", cls.queue_size)),
            timeout_s=float(env.get("DHAT_TIMEOUT_S", cls.timeout_s)),
            max_concurrency=int(env.get("DHAT_MAX_CONCURRENCY", cls.max_concurrency)),
            workers=int(env.get("DHAT_WORKERS", cls.workers)),
            intra_op_threads=int(env.get("DHAT_INTRA_OP_THREADS", cls.intra_op_threads)),
            grace_s=float(env.get("DHAT_GRACE_S", cls.grace_s)),
            keep_alive_s=int(env.get("DHAT_KEEP_ALIVE_S", cls.keep_alive_s)),
            drain_delay_s=float(env.get("DHAT_DRAIN_DELAY_S", cls.drain_delay_s)),
            grpc_port=int(env.get("DHAT_GRPC_PORT", cls.grpc_port)),
            grpc_host=env.get("DHAT_GRPC_HOST", cls.grpc_host),
            warmup_batches=env.get("DHAT_WARMUP_BATCHES", cls.warmup_batches),
            gpus=env.get("DHAT_GPUS", ""),
            api_keys=env.get("DHAT_API_KEYS", ""),
            api_keys_file=env.get("DHAT_API_KEYS_FILE") or None,
            protect_metrics=env_flag("DHAT_PROTECT_METRICS"),
            ssl_certfile=env.get("DHAT_SSL_CERTFILE") or None,
            ssl_keyfile=env.get("DHAT_SSL_KEYFILE") or None,
            cors_origins=env.get("DHAT_CORS_ORIGINS", ""),
            access_log=env_flag("DHAT_ACCESS_LOG"),
            tracing=env_flag("DHAT_TRACING"),
        )

    def warmup_sizes(self) -> tuple[int, ...]:
        """The batch sizes of the start-up warm-up (``DHAT_WARMUP_BATCHES``), each in 1..``max_batch``."""
        text = self.warmup_batches.strip().lower()
        if text in ("off", "0", "none", ""):
            return ()
        if text == "auto":
            return tuple(sorted({1, min(self.batch_size, self.max_batch)}))
        try:
            sizes = tuple(sorted({int(part) for part in text.split(",")}))
        except ValueError:
            raise ValueError(
                f"DHAT_WARMUP_BATCHES={self.warmup_batches!r}: use auto, off or batch sizes like 1,64"
            ) from None
        if sizes[0] < 1 or sizes[-1] > self.max_batch:
            raise ValueError(f"DHAT_WARMUP_BATCHES={self.warmup_batches!r}: sizes must be in 1..{self.max_batch}")
        return sizes

    def gpu_ids(self, visible: int) -> tuple[int, ...]:
        """``DHAT_GPUS`` as ids, or every one of the ``visible`` GPUs when it is empty."""
        if not self.gpus.strip():
            return tuple(range(visible))
        try:
            return tuple(int(part) for part in self.gpus.split(","))
        except ValueError:
            raise ValueError(f"DHAT_GPUS={self.gpus!r}: use GPU ids like 0,1") from None

    def ort_threads(self) -> int:
        """Intra-op threads per session: the machine's cores shared among the workers (at least 1)."""
        return self.intra_op_threads or max(1, (os.cpu_count() or 1) // max(1, self.workers))
