"""The Open Inference Protocol v2 routes (KServe v2 / Triton HTTP), as plain module-level handlers.

Its models are the request modes (``main``, ``second``, ``merged``: output ``logits``; ``all``:
``logits``, ``main_logits``, ``second_logits`` from one run of ``merged.onnx``, as
``contract.REQUEST_OUTPUTS`` says); its version is the artifact's version. Each handler takes the engine
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
from dhat_serve.oip import HEADER_LENGTH, encode_infer, parse_infer

EXTENSIONS = ["binary_tensor_data", "statistics"]


def engine_of(request: Request) -> Engine:
    """The worker's engine, or a 503 ``starting`` refusal while it loads."""
    return request.app.state.process.require()


def resolve_model(engine: Engine, request: Request) -> str:
    """The model (request mode) named in the path, its version checked; 404 names the valid ones."""
    model = request.path_params["model"]
    if model not in REQUEST_MODES:
        raise NotFound(f"unknown model {model!r}; models: {', '.join(REQUEST_MODES)}")
    version = request.path_params.get("version")
    if version not in (None, "", engine.runtime.manifest.version):
        raise NotFound(f"model {model!r} has no version {version!r}; version: {engine.runtime.manifest.version}")
    return model


def model_metadata(engine: Engine, model: str) -> dict[str, Any]:
    """OIP model metadata: the ``images`` input FP32 [-1, C, H, W] and the mode's outputs [-1, classes]."""
    manifest = engine.runtime.manifest
    return {"name": model, "versions": [manifest.version], "platform": "onnxruntime_onnx",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, *manifest.input_shape]}],
            "outputs": [{"name": n, "datatype": "FP32", "shape": [-1, manifest.num_classes]}
                        for n in request_output_names(model)],
            "parameters": {"class_names": list(manifest.class_names), "input_range": list(manifest.input_range)}}


async def server_metadata(request: Request) -> Response:
    """``GET /v2``: the server's name, version and the protocol extensions it speaks."""
    engine_of(request)
    return JSONResponse({"name": "dhat", "version": __version__, "extensions": EXTENSIONS})


async def live(request: Request) -> Response:
    """``GET /v2/health/live``: the process answers."""
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    """``GET /v2/health/ready``: 200 once the engine is loaded, 503 before."""
    ok = request.app.state.process.engine is not None
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


async def metadata(request: Request) -> Response:
    """``GET /v2/models/{model}[/versions/{v}]``."""
    engine = engine_of(request)
    return JSONResponse(model_metadata(engine, resolve_model(engine, request)))


async def model_ready(request: Request) -> Response:
    """``GET /v2/models/{model}/ready``: every known model is ready once the engine is."""
    resolve_model(engine_of(request), request)
    return JSONResponse({"name": request.path_params["model"], "ready": True})


async def statistics(request: Request) -> Response:
    """``GET /v2/models/{model}/stats``: Triton-named counters from the process's observer."""
    engine = engine_of(request)
    model = resolve_model(engine, request)
    stats = engine.state.observer.to_dict(model)
    return JSONResponse({"model_stats": [{"name": model, "version": engine.runtime.manifest.version, **stats}]})


async def infer(request: Request) -> Response:
    """``POST /v2/models/{model}/infer``: JSON or binary tensors in, the model's outputs out."""
    engine = engine_of(request)
    model = resolve_model(engine, request)
    manifest = engine.runtime.manifest
    parsed = parse_infer(await request.body(), request.headers.get(HEADER_LENGTH), INPUT_NAME, manifest.input_shape,
                         request_output_names(model), engine.cfg.max_batch)
    outputs = await engine.infer(model, parsed.images)
    body, header_length = encode_infer(model, manifest.version, parsed.id, {n: outputs[n] for n in parsed.outputs},
                                       parsed.binary)
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(body, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(header_length)})


def oip_routes() -> list[Route]:
    """Every OIP route, unversioned and versioned."""
    table = [Route("/v2", server_metadata), Route("/v2/health/live", live), Route("/v2/health/ready", ready)]
    for base in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        table += [Route(base, metadata), Route(base + "/ready", model_ready), Route(base + "/stats", statistics),
                  Route(base + "/infer", infer, methods=["POST"])]
    return table
