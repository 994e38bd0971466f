"""The Open Inference Protocol v2 routes (KServe v2 / Triton HTTP), as plain handlers over the data plane.

Each handler takes the worker's ``DataPlane`` from the app (``plane_of``: a 503 ``starting`` while the
worker is loading), describes models through ``oip.models`` and only raises refusals; the app's one
exception handler answers them (``errors.refusal_response``). ``infer`` decodes the body (``oip.codec``)
into an ``InferRequest``, calls ``DataPlane.infer`` and encodes its ``InferResult``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dhat_serve import __version__
from dhat_serve.contract import INPUT_NAME
from dhat_serve.dataplane import DataPlane, InferRequest, oip_version
from dhat_serve.http import access_of, plane_of
from dhat_serve.oip.codec import HEADER_LENGTH, encode_infer, parse_infer
from dhat_serve.oip.models import EXTENSIONS, model_config, model_metadata, model_statistics
from dhat_serve.oip.openapi import openapi_document


def path_mode(plane: DataPlane, request: Request) -> str:
    """The model (request mode) named in the path, its version checked by the data plane; 404 names the valid ones."""
    return plane.check_mode(request.path_params["model"], request.path_params.get("version"))


async def server_metadata(request: Request) -> Response:
    """``GET /v2``: the server's name, version and the protocol extensions it speaks."""
    plane_of(request)
    return JSONResponse({"name": "dhat", "version": __version__, "extensions": EXTENSIONS})


async def openapi(request: Request) -> Response:
    """``GET /v2/openapi.json``: the OpenAPI description of these routes (``oip.openapi``)."""
    return JSONResponse(openapi_document())


async def live(request: Request) -> Response:
    """``GET /v2/health/live``: the process answers."""
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    """``GET /v2/health/ready``: 200 once the engine is loaded and warm, 503 before and from SIGTERM on."""
    ok = plane_of(request).state.ready
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


async def metadata(request: Request) -> Response:
    """``GET /v2/models/{model}[/versions/{v}]``."""
    plane = plane_of(request)
    return JSONResponse(model_metadata(plane, path_mode(plane, request)))


async def model_ready(request: Request) -> Response:
    """``GET /v2/models/{model}/ready``: every known model is ready when the server is (503 otherwise)."""
    plane = plane_of(request)
    path_mode(plane, request)
    ok = plane.state.ready
    return JSONResponse({"name": request.path_params["model"], "ready": ok}, status_code=200 if ok else 503)


async def config(request: Request) -> Response:
    """``GET /v2/models/{model}/config``: Triton's model configuration extension."""
    plane = plane_of(request)
    return JSONResponse(model_config(plane, path_mode(plane, request)))


async def statistics(request: Request) -> Response:
    """``GET /v2/models/{model}/stats``: Triton's statistics schema, from the process's observer."""
    plane = plane_of(request)
    return JSONResponse({"model_stats": [model_statistics(plane, path_mode(plane, request))]})


async def all_statistics(request: Request) -> Response:
    """``GET /v2/models/stats``: every model's statistics."""
    plane = plane_of(request)
    models = plane.engine.runtime.manifest.request_modes
    return JSONResponse({"model_stats": [model_statistics(plane, model) for model in models]})


async def infer(request: Request) -> Response:
    """``POST /v2/models/{model}/infer``: JSON or binary tensors in, the mode's outputs out (counted as
    ``oip_http``)."""
    plane, access = plane_of(request), access_of(request)
    mode, version = request.path_params["model"], request.path_params.get("version")
    with plane.decoding("oip_http", mode, version, access=access):
        body = parse_infer(await request.body(), request.headers.get(HEADER_LENGTH), INPUT_NAME)
    decoded = InferRequest("oip_http", mode, body.images, access, body.outputs, body.timeout_s, version)
    result = await plane.infer(decoded)
    payload, json_length = encode_infer(
        result.mode, oip_version(result.artifact["version"]), body.id, result.outputs, body.binary, body.binary_default
    )
    if json_length is None:
        return Response(payload, media_type="application/json")
    return Response(
        payload, media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(json_length)}
    )


def oip_routes() -> list[Route]:
    """Every OIP route, unversioned and versioned; ``infer`` first, since Starlette tries routes in order and it is
    the one route under load."""
    table = [
        Route(base + "/infer", infer, methods=["POST"])
        for base in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}")
    ]
    table += [
        Route("/v2", server_metadata),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2/models/stats", all_statistics),
        Route("/v2/openapi.json", openapi),
    ]
    for base in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        table += [
            Route(base, metadata),
            Route(base + "/ready", model_ready),
            Route(base + "/stats", statistics),
            Route(base + "/config", config),
        ]
    return table
