"""The one refusal mapper: each reason -> status, headers and body, the same on every way out."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from dhat_serve.errors import (BadRequest, NotFound, Overloaded, PayloadTooLarge, TooManyRequests, bentoml_reply,
                               json_response, send_refusal)

CASES = [
    (BadRequest("inputs must be in [0, 1]"), 400, "bad_request", None),
    (NotFound("unknown model 'x'"), 404, "not_found", None),
    (PayloadTooLarge("body too big"), 413, "too_large", None),
    (TooManyRequests("more than 4 requests in flight"), 429, "max_concurrency", "1"),
    (Overloaded("queue_full", "the queue is full"), 503, "queue_full", "1"),
    (Overloaded("starting", "the model is still loading"), 503, "starting", "1"),
    (Overloaded("deadline", "no answer within 1 s"), 504, "deadline", None),
]


def _asgi(exc, close):  # noqa: ANN001
    sent = []

    async def send(message):  # noqa: ANN001
        sent.append(message)

    asyncio.run(send_refusal(send, exc, close=close))
    start, body = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(body["body"])


@pytest.mark.parametrize("exc, status, reason, retry_after", CASES)
def test_each_refusal_answers_the_same_on_every_protocol(exc, status, reason, retry_after):
    assert exc.status == status and exc.reason == reason
    starlette = json_response(exc)
    assert starlette.status_code == status and json.loads(starlette.body) == {"error": str(exc)}
    assert starlette.headers.get("retry-after") == retry_after
    ctx = SimpleNamespace(response=SimpleNamespace(status_code=200, headers={}))
    assert bentoml_reply(exc, ctx) == {"error": str(exc)}
    assert ctx.response.status_code == status and ctx.response.headers.get("Retry-After") == retry_after
    code, headers, body = _asgi(exc, close=True)
    assert code == status and body == {"error": str(exc)} and headers.get("retry-after") == retry_after
    assert headers["connection"] == "close" and headers["content-type"] == "application/json"
    assert "connection" not in _asgi(exc, close=False)[1]


def test_an_unknown_overload_reason_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown overload reason 'busy'"):
        Overloaded("busy", "x")
