"""An OpenAPI 3 description of the ``/v2`` routes, served at ``GET /v2/openapi.json``.

It follows KServe's Open Inference Protocol REST spec (``open-inference-protocol``'s ``inference_rest.md``
and its OpenAPI file): the same paths, the ``inference_request`` / ``inference_response`` shapes and the
``{"error": ...}`` body of every failure, plus Triton's model configuration and statistics routes. Model
names and versions are plain strings on purpose, as in the spec: a fuzzer reading this description
(schemathesis in ``tests/dhat_serve/test_openapi_fuzz.py``) must also try names the server does not know.
"""

from __future__ import annotations

from typing import Any

from dhat_serve import __version__

ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
PARAMETERS = {"type": "object", "additionalProperties": True}
TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "parameters": PARAMETERS,
        "data": {"type": "array", "items": {}},
    },
}
INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": PARAMETERS,
        "inputs": {"type": "array", "items": TENSOR},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": PARAMETERS},
            },
        },
    },
}
INFER_RESPONSE = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "outputs": {"type": "array", "items": TENSOR},
    },
}


def _answers(ok: dict[str, Any], *failures: int) -> dict[str, Any]:
    """A route's responses: 200 with ``ok``, and each failure status with OIP's error body."""
    json_of = lambda schema: {"content": {"application/json": {"schema": schema}}}  # noqa: E731
    return {
        "200": {"description": "OK", **json_of(ok)},
        **{str(code): {"description": "refused", **json_of(ERROR)} for code in failures},
    }


def _model_routes(base: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    obj = {"type": "object"}
    return {
        base: {"get": {"summary": "model metadata", "parameters": params, "responses": _answers(obj, 404, 503)}},
        f"{base}/ready": {
            "get": {"summary": "model readiness", "parameters": params, "responses": _answers(obj, 404, 503)}
        },
        f"{base}/config": {
            "get": {"summary": "Triton model configuration", "parameters": params, "responses": _answers(obj, 404, 503)}
        },
        f"{base}/stats": {
            "get": {"summary": "Triton statistics", "parameters": params, "responses": _answers(obj, 404, 503)}
        },
        f"{base}/infer": {
            "post": {
                "summary": "inference (JSON tensors; the binary extension needs Inference-Header-Content-Length)",
                "parameters": params,
                "requestBody": {"required": True, "content": {"application/json": {"schema": INFER_REQUEST}}},
                "responses": _answers(INFER_RESPONSE, 400, 403, 404, 413, 429, 503, 504),
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of every ``/v2`` route (unversioned and versioned)."""
    model = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    obj = {"type": "object"}
    paths: dict[str, Any] = {
        "/v2": {"get": {"summary": "server metadata", "responses": _answers(obj, 503)}},
        "/v2/health/live": {"get": {"summary": "liveness", "responses": _answers(obj)}},
        "/v2/health/ready": {"get": {"summary": "readiness (503 while loading)", "responses": _answers(obj, 503)}},
        "/v2/models/stats": {"get": {"summary": "every model's statistics", "responses": _answers(obj, 503)}},
        **_model_routes("/v2/models/{model}", [model]),
        **_model_routes("/v2/models/{model}/versions/{version}", [model, version]),
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "dhat Open Inference Protocol v2", "version": __version__},
        "paths": paths,
    }
