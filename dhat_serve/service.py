"""The BentoML service: per-request robustness mode on ONNX Runtime, one process from socket to session.

``DHAT`` loads the artifact into an ``Engine`` when its worker starts and wraps it in the worker's
``DataPlane`` (admission, observation, the model check, the engine's per-mode batchers, output
selection). Every protocol decodes a request, calls ``DataPlane.infer`` and encodes the answer:

- ``POST /classify`` (an image file) and ``POST /predict`` (a JSON tensor) are the typed APIs below;
- ``POST /predict`` with a ``.npy`` body is answered by ``http.npy.NpyPredict``, installed next to ``predict``;
- the Open Inference Protocol v2 (``/v2/...``) and ``GET /info`` are ``http.app.protocol_app``, mounted here;
- the Open Inference Protocol over gRPC (``oip.grpc_service``) when ``DHAT_GRPC_PORT`` is set, on this worker's loop;
- BentoML adds ``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI page at ``/docs``.

No worker state lives in this module: the middleware and the mounted app are given ``current_plane``,
which asks BentoML for this worker's service instance (``bentoml.get_current_service``, the injection
BentoML's own FastAPI integration uses) and answers 503 ``starting`` before it exists. Refusals
(``errors``) are raised anywhere and encoded once per protocol: a full queue 503 + Retry-After at once,
past ``DHAT_TIMEOUT_S`` 504, more than ``DHAT_MAX_CONCURRENCY`` in flight 429. On SIGTERM the server stops
accepting and answers every accepted request before it exits (``DHAT_GRACE_S``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import bentoml
from starlette.middleware.cors import CORSMiddleware

from dhat_serve.auth import ApiKeys
from dhat_serve.config import ServeConfig, comma_list
from dhat_serve.dataplane import DataPlane, Decoded, InferRequest, InputSpec
from dhat_serve.engine import Engine
from dhat_serve.errors import Overloaded, Refusal, bentoml_reply
from dhat_serve.http import logfilter
from dhat_serve.http.answers import check_top_k, classify_answer, predict_answer
from dhat_serve.http.app import protocol_app
from dhat_serve.http.drain import Drain
from dhat_serve.http.guard import RequestGuard
from dhat_serve.http.keycheck import KeyCheck
from dhat_serve.http.npy import NpyPredict
from dhat_serve.manifest import ArtifactError
from dhat_serve.observer import Observer, Prometheus
from dhat_serve.state import ProcessState
from dhat_serve.validation import decode_image, json_array

CORS_HEADERS = ["Authorization", "Content-Type", "Inference-Header-Content-Length"]
# Read at import on purpose: BentoML's decorator takes the worker count and the timeout when the class is
# defined, and the middleware list below (CORS on or off) is fixed then too. Everything else is per worker.
CONFIG = ServeConfig.from_env()
NO_TRACING = ["."]
"""BentoML's ``tracing.excluded_urls`` when ``DHAT_TRACING`` is off: a regex every URL matches, so OpenTelemetry's
ASGI middleware (always installed by BentoML) hands each request straight to the app."""
MODES_HELP = "main, second, merged or all (default merged); anything else is 404 naming the modes"


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
        self.names = list(engine.runtime.manifest.class_names)

    async def __is_ready__(self) -> bool:
        """BentoML's ``/readyz``: the worker's readiness (loaded, warm, not draining), as ``/v2/health/ready``."""
        return self.plane.state.ready

    async def _answer(self, ctx: bentoml.Context, request: InferRequest, encode: Any) -> dict[str, Any]:
        """The data plane's result encoded by ``encode``, or its refusal through ``errors.bentoml_reply``."""
        try:
            return encode(await self.plane.infer(request))
        except Refusal as exc:
            return bentoml_reply(exc, ctx, request.endpoint)

    @bentoml.api(route="/classify")
    async def classify(
        self, image: Path, ctx: bentoml.Context, mode: str | None = None, top_k: int | None = None
    ) -> dict[str, Any]:
        """Classify one PNG/JPEG image (multipart field ``image``); ``mode``: main, second, merged or all (default
        merged; a single-head artifact serves main only, its default).

        ``top_k`` defaults to 5, or to every class when the model has fewer."""
        k = None

        def decode(spec: InputSpec) -> Decoded:
            nonlocal k
            k = check_top_k(top_k, len(self.names))
            channels, size, _ = spec.shape
            return Decoded(decode_image(Path(image).read_bytes(), channels, size, CONFIG.max_image_pixels)[None])

        return await self._answer(
            ctx,
            InferRequest("classify", mode, decode),
            lambda r: classify_answer(r.model, r.outputs, self.names, k, r.artifact),
        )

    @bentoml.api(route="/predict")
    async def predict(self, inputs: list, ctx: bentoml.Context, mode: str | None = None) -> dict[str, Any]:
        """Classify a batch given as JSON: ``inputs`` is (N, C, H, W) floats in [0, 1]; ``mode`` as ``/classify``.

        A ``.npy`` body to the same path is answered by ``http.npy.NpyPredict`` (installed below) with ``.npy`` logits.
        """

        def decode(spec: InputSpec) -> Decoded:
            return Decoded(json_array(inputs, spec.shape, spec.max_batch))  # validate_array: the data plane's

        return await self._answer(
            ctx, InferRequest("predict", mode, decode), lambda r: predict_answer(r.model, r.outputs, r.artifact)
        )


# Added first, so outermost: CORS answers browsers' preflights; the guard caps every request's body (.npy ones
# included) and reads it, so the key check inside it can refuse without leaving unread bytes on the socket.
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
DHAT.add_asgi_middleware(NpyPredict, plane=current_plane)  # POST /predict with a .npy body (see http/npy.py)
