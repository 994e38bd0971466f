"""The one refusal mapper: each reason -> status, headers and body, the same on every way out."""

from __future__ import annotations

import asyncio
import json

import pytest

from dhat_serve.errors import (
    BadRequest,
    InferenceFailed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    refusal_response,
)

CASES = [
    (BadRequest("inputs must be in [0, 1]"), 400, "bad_request", None, "INVALID_ARGUMENT"),
    (Unauthorized("no API key"), 401, "unauthorized", None, "UNAUTHENTICATED"),
    (NotFound("unknown model 'x'"), 404, "not_found", None, "NOT_FOUND"),
    (PayloadTooLarge("body too big"), 413, "too_large", None, "RESOURCE_EXHAUSTED"),
    (TooManyRequests("more than 4 requests in flight"), 429, "max_concurrency", "1", "RESOURCE_EXHAUSTED"),
    (InferenceFailed("the model run failed"), 500, "model_error", None, "INTERNAL"),
    (Overloaded("queue_full", "the queue is full"), 503, "queue_full", "1", "UNAVAILABLE"),
    (Overloaded("starting", "the model is still loading"), 503, "starting", "1", "UNAVAILABLE"),
    (Overloaded("deadline", "no answer within 1 s"), 504, "deadline", None, "DEADLINE_EXCEEDED"),
]


def _asgi(exc, close):
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(refusal_response(exc, close=close)({"type": "http"}, receive, send))
    start, body = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(body["body"])


@pytest.mark.parametrize("exc, status, reason, retry_after, grpc_code", CASES)
def test_each_refusal_answers_the_same_on_every_protocol(exc, status, reason, retry_after, grpc_code):
    import grpc

    assert exc.status == status and exc.reason == reason and exc.grpc_code == grpc_code
    assert isinstance(getattr(grpc.StatusCode, exc.grpc_code), grpc.StatusCode)
    starlette = refusal_response(exc)
    assert starlette.status_code == status and json.loads(starlette.body) == {"error": str(exc)}
    assert starlette.headers.get("retry-after") == retry_after
    if status == 401:
        assert starlette.headers["WWW-Authenticate"].startswith("Bearer")
    code, headers, body = _asgi(exc, close=True)
    assert code == status and body == {"error": str(exc)} and headers.get("retry-after") == retry_after
    assert headers["connection"].lower() == "close" and headers["content-type"] == "application/json"
    assert "connection" not in _asgi(exc, close=False)[1]


def test_an_unknown_overload_reason_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown overload reason 'busy'"):
        Overloaded("busy", "x")
