"""The BentoML service: per-request robustness mode on ONNX Runtime, one process from socket to session.

``DHAT`` loads the artifact into an ``Engine`` when its worker starts: the ONNX Runtime sessions and one
bounded, batching queue per request mode. Every protocol reaches the sessions through that engine in
the same process:

- ``POST /classify`` (an image file) and ``POST /predict`` (a JSON tensor) are the typed APIs below;
- ``POST /predict`` with a ``.npy`` body is answered by ``npy.NpyPredict``, installed next to ``predict``;
- the Open Inference Protocol v2 (``/v2/...``) and ``GET /info`` are ``http_app.protocol_app``, mounted here;
- the Open Inference Protocol over gRPC (``grpc_server``) when ``DHAT_GRPC_PORT`` is set, on this worker's loop;
- BentoML adds ``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI page at ``/docs``.

Every part of this worker gets the one ``ProcessState`` (engine, requests in flight, observer) as an
argument. Refusals (``errors``) are raised anywhere and answered in one place per protocol: overload is
shed, not queued (a full queue 503 + Retry-After at once, past ``DHAT_TIMEOUT_S`` 504, more than
``DHAT_MAX_CONCURRENCY`` in flight 429). On SIGTERM the server stops accepting and answers every accepted
request before it exits (``DHAT_GRACE_S``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import bentoml
from starlette.middleware.cors import CORSMiddleware

from dhat_serve import logfilter
from dhat_serve.answers import check_top_k, classify_answer, predict_answer
from dhat_serve.auth import ApiKeys, KeyCheck
from dhat_serve.config import ServeConfig, comma_list
from dhat_serve.contract import DEFAULT_REQUEST_MODE, RequestMode
from dhat_serve.drain import Drain
from dhat_serve.engine import Engine
from dhat_serve.errors import Refusal, bentoml_reply
from dhat_serve.guard import RequestGuard
from dhat_serve.http_app import protocol_app
from dhat_serve.manifest import ArtifactError
from dhat_serve.npy import NpyPredict
from dhat_serve.observer import Observer, Prometheus, observed
from dhat_serve.state import ProcessState
from dhat_serve.validation import decode_image, validate_tensor

CORS_HEADERS = ["Authorization", "Content-Type", "Inference-Header-Content-Length"]
CONFIG = ServeConfig.from_env()  # BentoML's decorator arguments (workers, timeout) need it at import time
STATE = ProcessState(Observer(Prometheus()))  # this worker's state; the engine is set in DHAT.__init__
KEYS = ApiKeys.from_config(CONFIG)  # optional API keys (auth.py), for HTTP and gRPC alike


def resolve_artifact_dir(cfg: ServeConfig) -> Path:
    """``DHAT_ARTIFACT`` if set, else the BentoML model store entry ``dhat:latest``."""
    if cfg.artifact:
        return Path(cfg.artifact)
    try:
        return Path(bentoml.models.get("dhat:latest").path)
    except bentoml.exceptions.NotFound:
        raise ArtifactError("no artifact: set DHAT_ARTIFACT=ARTIFACT_DIR (or run `dhat serve ARTIFACT_DIR`), "
                            "or import one with `dhat export ... --to-bentoml`") from None


async def answer(endpoint: str, mode: str, work: Callable[[], Awaitable[dict[str, Any]]],
                 ctx: bentoml.Context, observer: Observer) -> dict[str, Any]:
    """Run ``work`` for a typed API, counted: its result, or the refusal it raised answered by ``errors.bentoml_reply``."""
    try:
        return await observed(observer, endpoint, mode, work)
    except Refusal as exc:
        return bentoml_reply(exc, ctx, endpoint)


def start_grpc(drain: Drain) -> None:
    """This worker's gRPC server (``grpc_server``) on its event loop; the drain stops it on SIGTERM."""
    from dhat_serve.grpc_server import GrpcServer  # grpcio is loaded only where gRPC is turned on

    server = GrpcServer(STATE, CONFIG, KEYS)
    asyncio.get_running_loop().create_task(server.start())
    drain.on_close.append(server.stop)


@bentoml.asgi_app(protocol_app(STATE), path="/")
@bentoml.service(name="dhat", workers=CONFIG.workers, traffic={"timeout": CONFIG.timeout_s + 5})
class DHAT:
    """Classify images with a DH-AT model; each request picks ``mode``: main, second, merged or all."""

    def __init__(self) -> None:
        logfilter.install()
        self.engine = Engine.load(resolve_artifact_dir(CONFIG), CONFIG, STATE, bentoml.server_context.worker_index)
        STATE.engine = self.engine
        asyncio.get_running_loop().create_task(self.engine.warm_up(CONFIG.warmup_sizes()))  # then ready
        drain = Drain(STATE, CONFIG.grace_s, delay_s=CONFIG.drain_delay_s)
        drain.install()
        if CONFIG.grpc_port:
            start_grpc(drain)
        manifest = self.engine.runtime.manifest
        self.channels, self.size, _ = manifest.input_shape
        self.names = list(manifest.class_names)

    async def __is_ready__(self) -> bool:
        """BentoML's ``/readyz``: the worker's readiness (loaded, warm, not draining), as ``/v2/health/ready``."""
        return STATE.ready

    @bentoml.api(route="/classify")
    async def classify(self, image: Path, ctx: bentoml.Context, mode: RequestMode = DEFAULT_REQUEST_MODE,
                       top_k: int | None = None) -> dict[str, Any]:
        """Classify one PNG/JPEG image (multipart field ``image``); ``mode=all`` answers every mode at once.

        ``top_k`` defaults to 5, or to every class when the model has fewer."""

        async def work() -> dict[str, Any]:
            k = check_top_k(top_k, len(self.names))
            x = decode_image(Path(image).read_bytes(), self.channels, self.size, CONFIG.max_image_pixels)[None]
            outputs = await self.engine.infer(mode, x)
            return classify_answer(mode, outputs, self.names, k, self.engine.artifact())

        return await answer("classify", mode, work, ctx, STATE.observer)

    @bentoml.api(route="/predict")
    async def predict(self, inputs: list, ctx: bentoml.Context, mode: RequestMode = DEFAULT_REQUEST_MODE) -> dict[str, Any]:
        """Classify a batch given as JSON: ``inputs`` is (N, C, H, W) floats in [0, 1].

        A ``.npy`` body to the same path is answered by ``npy.NpyPredict`` (installed below) with ``.npy`` logits.
        """

        async def work() -> dict[str, Any]:
            x = validate_tensor(inputs, self.engine.runtime.manifest.input_shape, CONFIG.max_batch)
            outputs = await self.engine.infer(mode, x)
            return predict_answer(mode, outputs, self.engine.artifact())

        return await answer("predict", mode, work, ctx, STATE.observer)


# Added first, so outermost: CORS answers browsers' preflights; the guard caps and counts every request (.npy ones
# included) and reads its body, so the key check inside it can refuse without leaving unread bytes on the socket.
if CONFIG.cors_origins:
    DHAT.add_asgi_middleware(CORSMiddleware, allow_origins=list(comma_list(CONFIG.cors_origins)),
                             allow_methods=["GET", "POST"], allow_headers=CORS_HEADERS, expose_headers=CORS_HEADERS)
DHAT.add_asgi_middleware(RequestGuard, max_bytes=CONFIG.max_request_bytes, max_concurrency=CONFIG.max_concurrency,
                         state=STATE)
DHAT.add_asgi_middleware(KeyCheck, keys=KEYS, protect_metrics=CONFIG.protect_metrics)
DHAT.add_asgi_middleware(NpyPredict, state=STATE)  # POST /predict with a .npy body (see npy.py)
