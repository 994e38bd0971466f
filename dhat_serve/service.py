"""The BentoML service: per-request robustness mode on ONNX Runtime, one process from socket to session.

``DHAT`` loads the artifact into an ``Engine`` when its worker starts and wraps it in the worker's
``DataPlane`` (admission, observation, the mode check, the engine's per-mode batchers, output
selection). Every protocol decodes a request at its edge, calls ``DataPlane.infer`` and encodes the answer:

- over HTTP, one mounted Starlette app (``http.app.protocol_app``): ``POST /classify`` (an image file) and
  ``POST /predict`` (a JSON or ``.npy`` tensor) in ``http.predict``, the Open Inference Protocol v2 (``/v2/...``,
  ``oip.rest``) and ``GET /info``;
- the Open Inference Protocol over gRPC (``oip.grpc_service``) when ``DHAT_GRPC_PORT`` is set, on this worker's loop;
- BentoML keeps ``/healthz``, ``/readyz`` (``__is_ready__`` below), ``/metrics`` and its ``/docs`` page; the
  routes above are described at ``/openapi.json``.

No worker state lives in this module: the mounted app is given ``current_plane``, which asks BentoML for this
worker's service instance (``bentoml.get_current_service``, the injection BentoML's own FastAPI integration uses)
and answers 503 ``starting`` before it exists. Refusals (``errors``) are raised anywhere and encoded once per
protocol family (``errors.refusal_response`` for HTTP, ``oip.grpc_service.refuse`` for gRPC): a full queue 503 +
Retry-After at once, past ``DHAT_TIMEOUT_S`` 504, more than ``DHAT_MAX_CONCURRENCY`` in flight 429. On SIGTERM the
server stops accepting and answers every accepted request before it exits (``DHAT_GRACE_S``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import bentoml
from starlette.middleware.cors import CORSMiddleware

from dhat_serve.auth import ApiKeys
from dhat_serve.config import ServeConfig, comma_list
from dhat_serve.dataplane import DataPlane
from dhat_serve.engine import Engine
from dhat_serve.errors import Overloaded
from dhat_serve.http import logfilter
from dhat_serve.http.app import protocol_app
from dhat_serve.http.drain import Drain
from dhat_serve.http.guard import RequestGuard
from dhat_serve.http.keycheck import KeyCheck
from dhat_serve.manifest import ArtifactError
from dhat_serve.observer import Observer, Prometheus
from dhat_serve.state import ProcessState

CORS_HEADERS = ["Authorization", "Content-Type", "Inference-Header-Content-Length"]
# Read at import on purpose: BentoML's decorator takes the worker count and the timeout when the class is
# defined, and the middleware list below (CORS on or off) is fixed then too. Everything else is per worker.
CONFIG = ServeConfig.from_env()
NO_TRACING = ["."]
"""BentoML's ``tracing.excluded_urls`` when ``DHAT_TRACING`` is off: a regex every URL matches, so OpenTelemetry's
ASGI middleware (always installed by BentoML) hands each request straight to the app."""


def resolve_artifact_dir(cfg: ServeConfig) -> Path:
    """``DHAT_ARTIFACT`` if set, else the BentoML model store entry ``dhat:latest``."""
    if cfg.artifact:
        return Path(cfg.artifact)
    try:
        return Path(bentoml.models.get("dhat:latest").path)
    except bentoml.exceptions.NotFound:
        raise ArtifactError(
            "no artifact: set DHAT_ARTIFACT=ARTIFACT_DIR (or run `dhat serve ARTIFACT_DIR`), "
            "or import one with `dhat export ... --to-bentoml`"
        ) from None


def current_plane() -> DataPlane:
    """This worker's data plane, or ``Overloaded("starting")`` (503 + Retry-After) while the worker still loads."""
    try:
        return bentoml.get_current_service().plane
    except bentoml.exceptions.BentoMLException:
        raise Overloaded("starting", "the model is still loading; retry shortly") from None


def start_grpc(plane: DataPlane, cfg: ServeConfig, drain: Drain) -> None:
    """This worker's gRPC server (``oip.grpc_service``) on its event loop; the drain stops it on SIGTERM."""
    from dhat_serve.oip.grpc_service import GrpcServer  # grpcio is loaded only where gRPC is turned on

    server = GrpcServer(lambda: plane, cfg, ApiKeys.from_config(cfg))
    asyncio.get_running_loop().create_task(server.start())
    drain.on_close.append(server.stop)


async def warm(engine: Engine, state: ProcessState, sizes: tuple[int, ...]) -> None:
    """Warm every mode up, then mark the worker warm: readiness turns 200 only after it."""
    await engine.warm_up(sizes)
    state.warm = True


@bentoml.asgi_app(protocol_app(current_plane), path="/")
@bentoml.service(
    name="dhat",
    workers=CONFIG.workers,
    traffic={"timeout": CONFIG.timeout_s + 5},
    logging={"access": {"enabled": CONFIG.access_log}},
    tracing={} if CONFIG.tracing else {"excluded_urls": NO_TRACING},
)
class DHAT:
    """Classify images with a DH-AT model; each request picks ``mode``: main, second, merged or all."""

    def __init__(self) -> None:
        logfilter.install()
        state, observer = ProcessState(), Observer(Prometheus())
        engine = Engine.load(
            resolve_artifact_dir(CONFIG), CONFIG, observer, lambda: state.in_flight, bentoml.server_context.worker_index
        )
        self.plane = DataPlane(engine, state, observer, CONFIG.max_concurrency)
        asyncio.get_running_loop().create_task(warm(engine, state, CONFIG.warmup_sizes()))  # then ready
        drain = Drain(state, CONFIG.grace_s, delay_s=CONFIG.drain_delay_s)
        drain.install()
        if CONFIG.grpc_port:
            start_grpc(self.plane, CONFIG, drain)

    async def __is_ready__(self) -> bool:
        """BentoML's ``/readyz``: the worker's readiness (loaded, warm, not draining), as ``/v2/health/ready``."""
        return self.plane.state.ready


# Added first, so outermost: CORS answers browsers' preflights; the guard caps every request's body; the key check
# refuses a request without its key before any app reads the body (and closes that connection).
if CONFIG.cors_origins:
    DHAT.add_asgi_middleware(
        CORSMiddleware,
        allow_origins=list(comma_list(CONFIG.cors_origins)),
        allow_methods=["GET", "POST"],
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_HEADERS,
    )
DHAT.add_asgi_middleware(RequestGuard, max_bytes=CONFIG.max_request_bytes)
DHAT.add_asgi_middleware(KeyCheck, cfg=CONFIG)
