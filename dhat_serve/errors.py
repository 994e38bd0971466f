"""Every refusal the service makes, and the one place each protocol turns a refusal into an answer.

A refusal is a typed exception that carries its HTTP status, its reason (the label the metrics count
it under) and its headers (``Retry-After`` on 429 and 503). Validation, the protocols, the guard and
the batchers only *raise*; the functions at the bottom of this module answer, one per way an answer
leaves the server:

- ``json_response``: a Starlette ``JSONResponse`` (the Open Inference Protocol routes, ``/info``, ``.npy``);
- ``send_refusal``: raw ASGI messages (the request guard, before any app has run);
- ``bentoml_reply``: a typed BentoML API (``/classify``, JSON ``/predict``) through its ``Context``.

Every answer has the body ``{"error": message}`` (the Open Inference Protocol's error shape) and is
logged as one line without a traceback: INFO for a client error, WARNING for overload.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse

log = logging.getLogger("bentoml.dhat")  # under "bentoml" so BentoML's log configuration shows it

RETRY_AFTER_S = 1
"""Seconds a client told to retry (429, 503) waits: one batch on CPU takes well under this."""


class Refusal(Exception):
    """A request the service will not answer with a result; subclasses fix the status and the reason."""

    status: int = 400
    reason: str = "bad_request"

    def headers(self) -> dict[str, str]:
        """``Retry-After`` when trying again later may succeed (429, 503); nothing otherwise."""
        return {"Retry-After": str(RETRY_AFTER_S)} if self.status in (429, 503) else {}

    def body(self) -> dict[str, str]:
        """The JSON body every protocol sends: ``{"error": message}``."""
        return {"error": str(self)}


class BadRequest(Refusal):
    """Input the client got wrong (shape, range, type, format, parameters): HTTP 400."""


class Unauthorized(Refusal):
    """No API key or a wrong one, where ``DHAT_API_KEYS`` are set (``auth``): HTTP 401 + WWW-Authenticate."""

    status, reason = 401, "unauthorized"

    def headers(self) -> dict[str, str]:
        """``WWW-Authenticate``: which scheme the client must use (RFC 9110 requires it on a 401)."""
        return {"WWW-Authenticate": 'Bearer realm="dhat"'}


class NotFound(Refusal):
    """An unknown model or version on the Open Inference Protocol: HTTP 404."""

    status, reason = 404, "not_found"


class PayloadTooLarge(Refusal):
    """A body over ``DHAT_MAX_REQUEST_BYTES``: HTTP 413."""

    status, reason = 413, "too_large"


class TooManyRequests(Refusal):
    """More than ``DHAT_MAX_CONCURRENCY`` requests in flight in this worker: HTTP 429 + Retry-After."""

    status, reason = 429, "max_concurrency"


OVERLOAD_STATUS = {"queue_full": 503, "starting": 503, "deadline": 504}
"""Why a request may be shed after it was accepted, and the status each reason answers with."""


class Overloaded(Refusal):
    """Load shed to protect the service: ``queue_full`` and ``starting`` are 503 + Retry-After, ``deadline`` 504."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in OVERLOAD_STATUS:
            raise ValueError(f"unknown overload reason {reason!r}; valid: {', '.join(OVERLOAD_STATUS)}")
        super().__init__(message)
        self.reason = reason
        self.status = OVERLOAD_STATUS[reason]


def log_refusal(exc: Refusal, where: str = "") -> None:
    """One line per refusal: INFO for a client's mistake, WARNING when the server sheds load."""
    (log.warning if exc.status in (429,) or exc.status >= 500 else log.info)(
        "HTTP %d%s: %s", exc.status, f" {where}" if where else "", exc)


def json_response(exc: Refusal, where: str = "") -> JSONResponse:
    """The refusal as a Starlette response: status, ``{"error": ...}`` and its headers."""
    log_refusal(exc, where)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def send_refusal(send: Callable[[dict[str, Any]], Awaitable[None]], exc: Refusal, close: bool = True) -> None:
    """The refusal as raw ASGI messages; ``close`` ends the connection (the request body was not read,
    so a client reusing the connection would write its next request behind the unread body)."""
    log_refusal(exc)
    body = json.dumps(exc.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers().items()]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def bentoml_reply(exc: Refusal, ctx: Any, where: str = "") -> dict[str, str]:  # noqa: ANN401 - a bentoml.Context
    """The refusal from a typed BentoML API: status and headers on ``ctx.response``, the body returned."""
    log_refusal(exc, where)
    ctx.response.status_code = exc.status
    for key, value in exc.headers().items():
        ctx.response.headers[key] = value
    return exc.body()
