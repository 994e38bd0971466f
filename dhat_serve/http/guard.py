"""The request guard: ASGI middleware in front of every route, protocol-blind.

Per worker process, before any app parses a request:
- a body over ``max_bytes``: 413 (bodies are buffered up to the limit, so a chunked upload is capped too);
- a malformed multipart body: 400 (BentoML would answer it with a 500).

Admission (429 past ``DHAT_MAX_CONCURRENCY``) is not here: it is the data plane's, for every protocol.
Refusals are answered with ``errors.refusal_response``. It knows no route and rewrites no path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from dhat_serve.errors import BadRequest, PayloadTooLarge, Refusal, refusal_response


class RequestGuard:
    """Cap the body size (413) and refuse multipart bodies that do not parse (400)."""

    def __init__(self, app: Callable, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def _read_body(self, scope: dict[str, Any], receive: Callable, send: Callable) -> bytes | None:
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                refusal = PayloadTooLarge(
                    f"request body of more than {total} bytes is over the limit of {self.max_bytes} bytes"
                )
                await refusal_response(refusal, close=True)(scope, receive, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _multipart_error(scope: dict[str, Any], body: bytes) -> Refusal | None:
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
        if not content_type.lower().startswith("multipart/form-data"):
            return None
        if "boundary=" not in content_type:
            return BadRequest("multipart/form-data request without a boundary")
        sent = False

        async def once() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.request", "body": b"", "more_body": False}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, once).form()
            await form.close()
        except Exception as exc:
            return BadRequest(f"malformed multipart/form-data body: {exc or type(exc).__name__}")
        return None

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            refusal = PayloadTooLarge(
                f"request body of {int(length)} bytes is over the limit of {self.max_bytes} bytes"
            )
            await refusal_response(refusal, close=True)(scope, receive, send)  # the body stays unread: close
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        problem = await self._multipart_error(scope, body)
        if problem:
            await refusal_response(problem)(scope, receive, send)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
