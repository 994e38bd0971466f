"""The request guard: ASGI middleware in front of every route, protocol-blind.

Per worker process, before any app parses a request, a body over ``max_bytes`` is a 413: at once when its
``Content-Length`` says so (the body is never read), and while it arrives when it has none (a chunked upload is
buffered up to the limit, then replayed to the app). A body with a ``Content-Length`` within the limit passes
untouched: the HTTP parser delivers no more than it declared, so there is nothing to count or copy (unless a
``Transfer-Encoding`` header comes with it: h11 then follows the chunks, so that body is counted).

Admission (429 past ``DHAT_MAX_CONCURRENCY``) is not here: it is the data plane's, for every protocol; a malformed
multipart body is the ``/classify`` edge's 400 (``http.predict``). Refusals are answered with
``errors.refusal_response``. It knows no route and rewrites no path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dhat_serve.errors import PayloadTooLarge, refusal_response


class RequestGuard:
    """Cap the body size (413)."""

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

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit():
            if int(length) <= self.max_bytes and b"transfer-encoding" not in headers:
                await self.app(scope, receive, send)  # the parser stops at the declared length
                return
            if int(length) <= self.max_bytes:  # chunked beside a Content-Length (h11 obeys the chunks): count it
                await self._buffered(scope, receive, send)
                return
            refusal = PayloadTooLarge(
                f"request body of {int(length)} bytes is over the limit of {self.max_bytes} bytes"
            )
            await refusal_response(refusal, close=True)(scope, receive, send)  # the body stays unread: close
            return
        await self._buffered(scope, receive, send)

    async def _buffered(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        """Read the body up to the limit (a 413 past it), then hand the app a ``receive`` that replays it."""
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
