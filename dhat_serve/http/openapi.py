"""The OpenAPI 3 description of every route of the service's app, served at ``GET /openapi.json``.

BentoML's ``/docs.json`` describes BentoML's own typed APIs, and this service has none: ``/classify`` and
``/predict`` are routes of the mounted app (``http.predict``). This document describes them, ``/info``, and every
Open Inference Protocol route (``oip.openapi``, also served alone at ``/v2/openapi.json``). Modes are plain strings
on purpose: a fuzzer reading it (``tests/dhat_serve/oip/test_openapi_fuzz.py``) must also try modes the server
does not know.
"""

from __future__ import annotations

from typing import Any

from dhat_serve import __version__
from dhat_serve.oip.openapi import ERROR, openapi_document

MODE = {"type": "string", "description": "main, second, merged or all (default: the artifact's default mode)"}


def _answers(ok: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    """200 with ``ok`` as ``media``, and every refusal these routes make with the ``{"error": ...}`` body."""
    refused = {"description": "refused", "content": {"application/json": {"schema": ERROR}}}
    return {"200": {"description": "OK", "content": {media: {"schema": ok}}}, **{str(c): refused for c in FAILURES}}


FAILURES = (400, 401, 403, 404, 413, 429, 503, 504)
CLASSIFY_FORM = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "a PNG or JPEG file"},
        "mode": MODE,
        "top_k": {"type": "integer", "description": "1 to the number of classes (default 5, or every class)"},
    },
}
PREDICT_JSON = {
    "type": "object",
    "required": ["inputs"],
    "properties": {"inputs": {"type": "array", "items": {}, "description": "(N, C, H, W) in [0, 1]"}, "mode": MODE},
}
BINARY = {"type": "string", "format": "binary"}


def service_document() -> dict[str, Any]:
    """``/classify``, ``/predict`` (JSON and ``.npy``), ``/info`` and the ``/v2`` routes: one OpenAPI 3.0 document."""
    obj = {"type": "object"}
    npy_mode = {"name": "mode", "in": "query", "required": False, "schema": MODE}
    paths = {
        "/classify": {
            "post": {
                "summary": "classify one image in the chosen mode",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": CLASSIFY_FORM}}},
                "responses": _answers(obj),
            }
        },
        "/predict": {
            "post": {
                "summary": "logits of a batch: JSON in and out, or .npy in and out (mode in the query)",
                "parameters": [npy_mode],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": PREDICT_JSON}, "application/x-npy": {"schema": BINARY}},
                },
                "responses": _answers(obj),
            }
        },
        "/info": {
            "get": {
                "summary": "what is served: modes, classes, input, hashes, limits, robustness card",
                "responses": _answers(obj),
            }
        },
        **openapi_document()["paths"],
    }
    return {"openapi": "3.0.3", "info": {"title": "dhat", "version": __version__}, "paths": paths}
