"""Every refusal the service makes, and the one table that says how each is answered on HTTP and gRPC.

A refusal is a typed exception that carries its HTTP status, its reason (the label the metrics count
it under) and its headers (``Retry-After`` on 429 and 503); ``GRPC_CODES`` gives the gRPC status of each
HTTP status (the mapping KServe and Triton use). Validation, the data plane, the guard and the batchers
only *raise*. ``refusal_response`` is the one HTTP encoding (a Starlette response: the app's exception
handler returns it, the guard and the key check send it as raw ASGI); the gRPC service aborts with
``Refusal.grpc_code`` (``oip.grpc_service.refuse``).

Every answer has the body ``{"error": message}`` (the Open Inference Protocol's error shape) and is
logged as one line without a traceback: INFO for a client error, WARNING for overload, ERROR for a
failed model run.
"""

from __future__ import annotations

import logging

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

    @property
    def grpc_code(self) -> str:
        """The name of the ``grpc.StatusCode`` this refusal ends a call with (``GRPC_CODES``)."""
        return GRPC_CODES.get(self.status, "INTERNAL")


GRPC_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""The gRPC status (``grpc.StatusCode`` name) of each refusal's HTTP status; names, so this module needs no grpcio."""


class BadRequest(Refusal):
    """Input the client got wrong (shape, range, type, format, parameters): HTTP 400."""


class Unauthorized(Refusal):
    """No API key or a wrong one, where ``DHAT_API_KEYS`` are set (``auth``): HTTP 401 + WWW-Authenticate."""

    status, reason = 401, "unauthorized"

    def headers(self) -> dict[str, str]:
        """``WWW-Authenticate``: which scheme the client must use (RFC 9110 requires it on a 401)."""
        return {"WWW-Authenticate": 'Bearer realm="dhat"'}


class Forbidden(Refusal):
    """A valid API key asking for a mode its keys-file line does not allow (``auth.Access``): HTTP 403."""

    status, reason = 403, "forbidden"


class NotFound(Refusal):
    """An unknown model or version on the Open Inference Protocol: HTTP 404."""

    status, reason = 404, "not_found"


class PayloadTooLarge(Refusal):
    """A body over ``DHAT_MAX_REQUEST_BYTES``: HTTP 413."""

    status, reason = 413, "too_large"


class TooManyRequests(Refusal):
    """More than ``DHAT_MAX_CONCURRENCY`` requests in flight in this worker: HTTP 429 + Retry-After."""

    status, reason = 429, "max_concurrency"


class InferenceFailed(Refusal):
    """``session.run`` raised on a batch: HTTP 500 / INTERNAL, counted as ``model_error`` (the server's fault)."""

    status, reason = 500, "model_error"


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
    """One line per refusal: INFO for a client's mistake, WARNING when the server sheds load, ERROR on a failed run."""
    level = (
        logging.ERROR
        if exc.status == 500
        else logging.WARNING
        if exc.status == 429 or exc.status > 500
        else logging.INFO
    )
    log.log(level, "HTTP %d%s: %s", exc.status, f" {where}" if where else "", exc)


def refusal_response(exc: Refusal, where: str = "", close: bool = False) -> JSONResponse:
    """The refusal as HTTP: status, ``{"error": ...}`` and its headers; ``close`` ends the connection (a caller
    that did not read the request body, so a client reusing the connection would write behind unread bytes).
    A Starlette response is itself an ASGI app, so middleware sends it with ``await response(scope, receive, send)``."""
    log_refusal(exc, where)
    headers = {**exc.headers(), **({"Connection": "close"} if close else {})}
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
