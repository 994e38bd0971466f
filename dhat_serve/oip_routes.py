"""The Open Inference Protocol v2 routes (KServe v2 / Triton HTTP), as plain module-level handlers.

Its models are the request modes (``main``, ``second``, ``merged``: output ``logits``; ``all``:
``logits``, ``main_logits``, ``second_logits`` from one run of ``merged.onnx``, as
``contract.REQUEST_OUTPUTS`` says); its version is the artifact's version as a decimal integer
(``oip_version``). The gRPC server (``grpc_server``) describes and checks models with the same functions. Each handler takes the engine
from the app's ``ProcessState`` (``request.app.state.process``) and only raises refusals; the app's
exception handler answers them (``errors.json_response``). The body formats live in ``oip.py``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dhat_serve import __version__
from dhat_serve.contract import INPUT_NAME, REQUEST_MODES, request_output_names
from dhat_serve.engine import Engine
from dhat_serve.errors import NotFound
from dhat_serve.manifest import Manifest
from dhat_serve.observer import ANY_MODE, observed
from dhat_serve.oip import HEADER_LENGTH, encode_infer, parse_infer
from dhat_serve.oip_openapi import openapi_document

EXTENSIONS = ["binary_tensor_data", "statistics", "model_configuration"]


def engine_of(request: Request) -> Engine:
    """The worker's engine, or a 503 ``starting`` refusal while it loads."""
    return request.app.state.process.require()


def oip_version(manifest: Manifest) -> str:
    """The models' version on the protocol: the artifact version's hex digits as a decimal integer.

    Triton's tools need integer versions (``perf_analyzer`` picks "the latest" with ``stoll``, and stops
    on ``e478126bfceb``); the decimal form names the same artifact, and both forms are accepted in paths."""
    try:
        return str(int(manifest.version, 16))
    except ValueError:
        return manifest.version


def check_model(engine: Engine, model: str, version: str | None) -> str:
    """``model`` if it is a request mode and ``version`` is empty or this artifact's (either form); else 404."""
    if model not in REQUEST_MODES:
        raise NotFound(f"unknown model {model!r}; models: {', '.join(REQUEST_MODES)}")
    manifest = engine.runtime.manifest
    if version not in (None, "", oip_version(manifest), manifest.version):
        raise NotFound(f"model {model!r} has no version {version!r}; version: {oip_version(manifest)} "
                       f"(artifact {manifest.version})")
    return model


def resolve_model(engine: Engine, request: Request) -> str:
    """The model (request mode) named in the path, its version checked; 404 names the valid ones."""
    return check_model(engine, request.path_params["model"], request.path_params.get("version"))


def model_metadata(engine: Engine, model: str) -> dict[str, Any]:
    """OIP model metadata: the ``images`` input FP32 [-1, C, H, W] and the mode's outputs [-1, classes]."""
    manifest = engine.runtime.manifest
    return {"name": model, "versions": [oip_version(manifest)], "platform": "onnxruntime_onnx",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, *manifest.input_shape]}],
            "outputs": [{"name": n, "datatype": "FP32", "shape": [-1, manifest.num_classes]}
                        for n in request_output_names(model)],
            "parameters": {"class_names": list(manifest.class_names), "input_range": list(manifest.input_range),
                           "artifact_version": manifest.version}}


def model_config(engine: Engine, model: str) -> dict[str, Any]:
    """Triton's model configuration (``GET /v2/models/{m}/config``), what ``perf_analyzer`` reads first.

    ``max_batch_size`` is ``DHAT_MAX_BATCH`` (images per request), so ``dims`` leave the batch out;
    ``dynamic_batching`` holds the batchers' real settings (``DHAT_BATCH_SIZE``, ``DHAT_MAX_WAIT_MS``,
    ``DHAT_QUEUE_SIZE``, ``DHAT_TIMEOUT_S``; a request's own ``timeout`` may only shorten it)."""
    manifest, cfg = engine.runtime.manifest, engine.cfg
    on_gpu = any(p and p[0] == "CUDAExecutionProvider" for p in engine.runtime.providers().values())
    return {"name": model, "platform": "onnxruntime_onnx", "backend": "onnxruntime",
            "version_policy": {"latest": {"num_versions": 1}}, "max_batch_size": cfg.max_batch,
            "input": [{"name": INPUT_NAME, "data_type": "TYPE_FP32", "format": "FORMAT_NCHW",
                       "dims": list(manifest.input_shape)}],
            "output": [{"name": n, "data_type": "TYPE_FP32", "dims": [manifest.num_classes]}
                       for n in request_output_names(model)],
            "dynamic_batching": {"preferred_batch_size": [cfg.batch_size],
                                 "max_queue_delay_microseconds": int(cfg.max_wait_ms * 1000),
                                 "default_queue_policy": {"timeout_action": "REJECT", "allow_timeout_override": True,
                                                          "default_timeout_microseconds": int(cfg.timeout_s * 1e6),
                                                          "max_queue_size": cfg.queue_size}},
            "instance_group": [{"name": model, "kind": "KIND_GPU" if on_gpu else "KIND_CPU", "count": 1}],
            "parameters": {"artifact_version": {"string_value": manifest.version}}}


def model_statistics(engine: Engine, model: str) -> dict[str, Any]:
    """One ``model_stats`` entry: Triton's schema, and beside it the project's own counters."""
    observer = engine.state.observer
    return {"name": model, "version": oip_version(engine.runtime.manifest), **observer.to_dict(model),
            **observer.of(model).triton()}


async def server_metadata(request: Request) -> Response:
    """``GET /v2``: the server's name, version and the protocol extensions it speaks."""
    engine_of(request)
    return JSONResponse({"name": "dhat", "version": __version__, "extensions": EXTENSIONS})


async def openapi(request: Request) -> Response:
    """``GET /v2/openapi.json``: the OpenAPI description of these routes (``oip_openapi``)."""
    return JSONResponse(openapi_document())


async def live(request: Request) -> Response:
    """``GET /v2/health/live``: the process answers."""
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    """``GET /v2/health/ready``: 200 once the engine is loaded and warm, 503 before and from SIGTERM on."""
    ok = request.app.state.process.ready
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


async def metadata(request: Request) -> Response:
    """``GET /v2/models/{model}[/versions/{v}]``."""
    engine = engine_of(request)
    return JSONResponse(model_metadata(engine, resolve_model(engine, request)))


async def model_ready(request: Request) -> Response:
    """``GET /v2/models/{model}/ready``: every known model is ready when the server is (503 otherwise)."""
    resolve_model(engine_of(request), request)
    ok = request.app.state.process.ready
    return JSONResponse({"name": request.path_params["model"], "ready": ok}, status_code=200 if ok else 503)


async def config(request: Request) -> Response:
    """``GET /v2/models/{model}/config``: Triton's model configuration extension."""
    engine = engine_of(request)
    return JSONResponse(model_config(engine, resolve_model(engine, request)))


async def statistics(request: Request) -> Response:
    """``GET /v2/models/{model}/stats``: Triton's statistics schema, from the process's observer."""
    engine = engine_of(request)
    return JSONResponse({"model_stats": [model_statistics(engine, resolve_model(engine, request))]})


async def all_statistics(request: Request) -> Response:
    """``GET /v2/models/stats``: every model's statistics."""
    engine = engine_of(request)
    return JSONResponse({"model_stats": [model_statistics(engine, model) for model in REQUEST_MODES]})


async def infer(request: Request) -> Response:
    """``POST /v2/models/{model}/infer``: JSON or binary tensors in, the model's outputs out (counted as ``oip_http``)."""
    engine = engine_of(request)
    model = request.path_params["model"]
    return await observed(engine.state.observer, "oip_http", model if model in REQUEST_MODES else ANY_MODE,
                          lambda: _infer(engine, request))


async def _infer(engine: Engine, request: Request) -> Response:
    model = resolve_model(engine, request)
    manifest = engine.runtime.manifest
    parsed = parse_infer(await request.body(), request.headers.get(HEADER_LENGTH), INPUT_NAME, manifest.input_shape,
                         request_output_names(model), engine.cfg.max_batch)
    outputs = await engine.infer(model, parsed.images, parsed.timeout_s)
    body, header_length = encode_infer(model, oip_version(manifest), parsed.id, {n: outputs[n] for n in parsed.outputs},
                                       parsed.binary)
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(body, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(header_length)})


def oip_routes() -> list[Route]:
    """Every OIP route, unversioned and versioned."""
    table = [Route("/v2", server_metadata), Route("/v2/health/live", live), Route("/v2/health/ready", ready),
             Route("/v2/models/stats", all_statistics), Route("/v2/openapi.json", openapi)]
    for base in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        table += [Route(base, metadata), Route(base + "/ready", model_ready), Route(base + "/stats", statistics),
                  Route(base + "/config", config), Route(base + "/infer", infer, methods=["POST"])]
    return table
