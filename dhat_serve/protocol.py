"""The HTTP routes BentoML's typed APIs cannot express, as one Starlette app mounted in the service.

- the Open Inference Protocol v2 (KServe v2 / Triton HTTP): server and model metadata, liveness,
  readiness, ``infer`` with JSON or binary tensors, and per-model statistics. Its models are the request
  modes (``main``, ``second``, ``merged``: output ``logits``; ``all``: ``logits``, ``main_logits``,
  ``second_logits`` from one run of ``merged.onnx``); its version is the artifact's version;
- ``POST /predict`` with a ``.npy`` body (``application/x-npy``; the guard routes it here), answered with
  a ``.npy`` of logits;
- ``GET /info``.

Errors are ``{"error": message}`` with a 4xx (bad request) or 503 + Retry-After / 504 (overload); a client
error is one INFO log line, never a traceback.
"""

from __future__ import annotations

import io
import logging
from typing import Any, Callable

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dhat_serve import __version__
from dhat_serve.batching import Overloaded
from dhat_serve.contract import ALL, ALL_OUTPUT_MODES, DEFAULT_REQUEST_MODE, INPUT_NAME, REQUEST_MODES, parse_mode
from dhat_serve.engine import Engine, EngineHolder, output_names
from dhat_serve.oip import HEADER_LENGTH, OIPError, encode_infer, parse_infer
from dhat_serve.preprocess import InputError, validate_array

log = logging.getLogger("bentoml.dhat")
NPY_PATH = "/_dhat/predict-npy"
RETRY_AFTER_S = "1"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """OIP's error body, logged as one line (INFO for client errors, WARNING for overload)."""
    (log.warning if status >= 500 else log.info)("HTTP %d: %s", status, message)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def overload_response(exc: Overloaded) -> JSONResponse:
    """503 + Retry-After for a full queue or a loading model, 504 for a missed deadline."""
    return error(exc.status, str(exc), {"Retry-After": RETRY_AFTER_S} if exc.status == 503 else None)


def model_metadata(engine: Engine, model: str) -> dict[str, Any]:
    """OIP model metadata: the ``images`` input FP32 [-1, C, H, W] and the mode's outputs [-1, classes]."""
    manifest = engine.runtime.manifest
    return {"name": model, "versions": [manifest.version], "platform": "onnxruntime_onnx",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, *manifest.input_shape]}],
            "outputs": [{"name": n, "datatype": "FP32", "shape": [-1, manifest.num_classes]} for n in output_names(model)],
            "parameters": {"class_names": list(manifest.class_names), "input_range": list(manifest.input_range)}}


def resolve_model(engine: Engine, request: Request) -> str:
    """The model (request mode) named in the path, its version checked; ``OIPError`` 404 names the valid ones."""
    model = request.path_params["model"]
    if model not in REQUEST_MODES:
        raise OIPError(f"unknown model {model!r}; models: {', '.join(REQUEST_MODES)}", status=404)
    version = request.path_params.get("version")
    if version not in (None, "", engine.runtime.manifest.version):
        raise OIPError(f"model {model!r} has no version {version!r}; version: {engine.runtime.manifest.version}",
                       status=404)
    return model


def routes(holder: EngineHolder, info: Callable[[Engine], dict[str, Any]]) -> list[Route]:
    """Every route of the app, closed over the per-process engine slot."""

    def guarded(handler: Callable) -> Callable:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(holder.require(), request)
            except OIPError as exc:
                return error(exc.status, str(exc))
            except InputError as exc:
                return error(400, str(exc))
            except Overloaded as exc:
                return overload_response(exc)
        return endpoint

    async def server(engine: Engine, request: Request) -> Response:
        return JSONResponse({"name": "dhat", "version": __version__, "extensions": ["binary_tensor_data", "statistics"]})

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        ok = holder.engine is not None
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def metadata(engine: Engine, request: Request) -> Response:
        return JSONResponse(model_metadata(engine, resolve_model(engine, request)))

    async def model_ready(engine: Engine, request: Request) -> Response:
        resolve_model(engine, request)
        return JSONResponse({"name": request.path_params["model"], "ready": True})

    async def stats(engine: Engine, request: Request) -> Response:
        model = resolve_model(engine, request)
        return JSONResponse({"model_stats": [{"name": model, "version": engine.runtime.manifest.version,
                                              **engine.stats()[model]}]})

    async def infer(engine: Engine, request: Request) -> Response:
        model = resolve_model(engine, request)
        manifest = engine.runtime.manifest
        parsed = parse_infer(await request.body(), request.headers.get(HEADER_LENGTH), INPUT_NAME,
                             manifest.input_shape, output_names(model), engine.cfg.max_batch)
        outputs = await engine.infer(model, parsed.images)
        body, header_length = encode_infer(model, manifest.version, parsed.id,
                                           {n: outputs[n] for n in parsed.outputs}, parsed.binary)
        if header_length is None:
            return Response(body, media_type="application/json")
        return Response(body, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(header_length)})

    async def predict_npy(engine: Engine, request: Request) -> Response:
        try:
            mode = parse_mode(request.query_params.get("mode", DEFAULT_REQUEST_MODE), allow_all=True)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        try:
            array = np.load(io.BytesIO(await request.body()), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"the body is not a .npy array ({exc})") from None
        images = validate_array(array, engine.runtime.manifest.input_shape, engine.cfg.max_batch)
        outputs = await engine.infer(mode, images)
        logits = np.stack([outputs[n] for n in output_names(mode)]) if mode == ALL else outputs[output_names(mode)[0]]
        buf = io.BytesIO()
        np.save(buf, logits.astype(np.float32), allow_pickle=False)
        names = ",".join(ALL_OUTPUT_MODES) if mode == ALL else mode
        return Response(buf.getvalue(), media_type="application/x-npy",
                        headers={"X-Dhat-Mode": mode, "X-Dhat-Logits-Of": names,
                                 "X-Dhat-Artifact-Version": engine.runtime.manifest.version})

    async def info_route(engine: Engine, request: Request) -> Response:
        return JSONResponse(info(engine))

    model_paths = ("/v2/models/{model}", "/v2/models/{model}/versions/{version}")
    table = [Route("/v2", guarded(server)), Route("/v2/health/live", live), Route("/v2/health/ready", ready),
             Route("/info", guarded(info_route)), Route(NPY_PATH, guarded(predict_npy), methods=["POST"])]
    for base in model_paths:
        table += [Route(base, guarded(metadata)), Route(base + "/ready", guarded(model_ready)),
                  Route(base + "/stats", guarded(stats)), Route(base + "/infer", guarded(infer), methods=["POST"])]
    return table


def protocol_app(holder: EngineHolder, info: Callable[[Engine], dict[str, Any]]) -> Starlette:
    """The Starlette app the service mounts at ``/`` (BentoML's own routes are matched first)."""
    return Starlette(routes=routes(holder, info))

