"""An ASGI middleware in front of every BentoML route: body size cap and malformed-body checks.

BentoML answers a body it cannot parse (a multipart request without a boundary, a part without a
name) with HTTP 500; this guard answers 413 for a body over the limit and 400 for a malformed multipart
body, before BentoML sees it. Bodies are buffered up to the limit, so a chunked upload is capped too.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from starlette.requests import Request


class RequestGuard:
    """Reject bodies over ``max_bytes`` (413) and multipart bodies that do not parse (400)."""

    def __init__(self, app: Callable, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    @staticmethod
    async def _answer(send: Callable, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, receive: Callable, send: Callable) -> bytes | None:
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._answer(send, 413, f"request body of more than {total} bytes is over the limit of "
                                              f"{self.max_bytes} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _multipart_error(self, scope: dict[str, Any], body: bytes) -> str | None:
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
        if not content_type.lower().startswith("multipart/form-data"):
            return None
        if "boundary=" not in content_type:
            return "multipart/form-data request without a boundary"
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
        except Exception as exc:  # noqa: BLE001 - any parser failure is the client's malformed body
            return f"malformed multipart/form-data body: {exc or type(exc).__name__}"
        return None

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._answer(send, 413, f"request body of {int(length)} bytes is over the limit of {self.max_bytes} bytes")
            return
        body = await self._read_body(receive, send)
        if body is None:
            return
        problem = await self._multipart_error(scope, body)
        if problem:
            await self._answer(send, 400, problem)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
