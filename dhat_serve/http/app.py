"""The one Starlette app the service mounts: every route of ours, in one mechanism.

BentoML keeps what it owns (``/healthz``, ``/readyz``, ``/metrics``, ``/docs``) and matches it first; this app
serves ``POST /classify`` and ``POST /predict`` (``http.predict``), the Open Inference Protocol's ``/v2/...``
(``oip.rest``) and ``GET /info``. Its handlers are plain functions that read the worker's data plane from
``app.state.plane`` (a callable the service passes in: a 503 ``starting`` while the worker loads), decode at the
edge, call ``DataPlane.infer``, encode, and raise refusals; ``on_refusal`` is the one place an HTTP refusal
becomes an answer (the guard and the key check in front send the same ``errors.refusal_response``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dhat_serve.card import NOT_EVALUATED, card_view
from dhat_serve.contract import request_output_names
from dhat_serve.dataplane import DataPlane
from dhat_serve.errors import Refusal, refusal_response
from dhat_serve.http import plane_of
from dhat_serve.http.openapi import service_document
from dhat_serve.http.predict import classify, predict
from dhat_serve.oip.rest import oip_routes


def info_document(plane: DataPlane) -> dict[str, Any]:
    """``GET /info``: what is served (modes, classes, input, hashes, parity, limits, providers, robustness card).

    No server paths: the artifact's name, version and hashes identify it, and a caller learns nothing
    about the machine's file system."""
    engine = plane.engine
    manifest, cfg = engine.runtime.manifest, engine.cfg
    return {
        "name": manifest.name,
        "version": manifest.version,
        "precision": manifest.precision,
        "modes": list(manifest.request_modes),
        "default_mode": manifest.default_mode,
        "outputs": {mode: list(request_output_names(mode)) for mode in manifest.request_modes},
        "class_names": list(manifest.class_names),
        "input_shape": [None, *manifest.input_shape],
        "input_range": list(manifest.input_range),
        "hashes": {m: g.sha256 for m, g in manifest.modes.items()},
        "parity": {m: g.parity.get("max_abs_diff") for m, g in manifest.modes.items()},
        "architecture": manifest.architecture,
        "provenance": manifest.provenance,
        "limits": {
            "max_batch": cfg.max_batch,
            "max_request_bytes": cfg.max_request_bytes,
            "max_image_pixels": cfg.max_image_pixels,
            "batch_size": cfg.batch_size,
            "max_wait_ms": cfg.max_wait_ms,
            "inline_run_ms": cfg.inline_run_ms,
            "queue_size": cfg.queue_size,
            "timeout_s": cfg.timeout_s,
            "max_concurrency": cfg.max_concurrency,
        },
        "providers": engine.runtime.providers(),
        "robustness": {
            **(engine.card.summary() if engine.card else NOT_EVALUATED),
            "modes": {mode: card_view(engine.card, mode) for mode in manifest.request_modes},
        },
    }


async def info(request: Request) -> Response:
    """``GET /info``."""
    return JSONResponse(info_document(plane_of(request)))


async def openapi(request: Request) -> Response:
    """``GET /openapi.json``: every route of this app (``http.openapi``)."""
    return JSONResponse(service_document())


async def on_disconnect(request: Request, exc: Exception) -> Response:
    """A client gone while its body was read: nobody reads this answer, and it is no server error (no traceback)."""
    return Response(status_code=499)


async def on_refusal(request: Request, exc: Exception) -> Response:
    """Every refusal a handler of this app raises, answered as ``{"error": ...}`` with its status and headers."""
    assert isinstance(exc, Refusal)
    return refusal_response(exc, request.url.path)


def protocol_app(plane: Callable[[], DataPlane]) -> Starlette:
    """The app the service mounts at ``/``; ``plane`` returns this worker's data plane (or raises ``starting``)."""
    routes = [
        Route("/predict", predict, methods=["POST"]),
        Route("/classify", classify, methods=["POST"]),
        *oip_routes(),
        Route("/info", info),
        Route("/openapi.json", openapi),
    ]
    app = Starlette(routes=routes, exception_handlers={Refusal: on_refusal, ClientDisconnect: on_disconnect})
    app.state.plane = plane
    return app
