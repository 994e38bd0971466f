"""An ASGI middleware in front of every route: concurrency cap, body size cap, malformed-body checks.

- more than ``max_concurrency`` requests in flight: 429 with Retry-After, at once;
- a body over ``max_bytes``: 413 (bodies are buffered up to the limit, so a chunked upload is capped too);
- a malformed multipart body: 400 (BentoML would answer it with a 500);
- ``POST /predict`` with a ``.npy`` body goes to the protocol app's binary route (BentoML's typed
  ``/predict`` takes JSON);
- every 503 leaves with a Retry-After header.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from starlette.requests import Request

from dhat_serve.protocol import NPY_PATH, RETRY_AFTER_S

log = logging.getLogger("bentoml.dhat")
NPY_TYPES = (b"application/x-npy", b"application/octet-stream")


class RequestGuard:
    """Cap concurrency (429), body size (413) and refuse multipart bodies that do not parse (400)."""

    def __init__(self, app: Callable, max_bytes: int, max_concurrency: int = 1 << 30, counter: Any = None,
                 on_reject: Callable[[], None] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_concurrency = max_concurrency
        self.counter = counter if counter is not None else self  # any object with an ``in_flight`` int
        self.in_flight = 0
        self.on_reject = on_reject or (lambda: None)

    @staticmethod
    async def _answer(send: Callable, status: int, message: str, close: bool = True) -> None:
        """A JSON error; ``close`` (the default: the request body was not read) ends the connection, because
        a client that reuses it would write its next request behind an unread body."""
        (log.warning if status in (429, 503) else log.info)("HTTP %d: %s", status, message)
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        if status in (429, 503):
            headers.append((b"retry-after", RETRY_AFTER_S.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
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
        if self.counter.in_flight >= self.max_concurrency:
            self.on_reject()
            await self._answer(send, 429, f"more than {self.max_concurrency} requests in flight; retry shortly")
            return
        self.counter.in_flight += 1
        try:
            await self._guarded(scope, receive, send)
        finally:
            self.counter.in_flight -= 1

    async def _guarded(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        headers = dict(scope.get("headers") or [])
        if scope.get("path") == "/predict" and headers.get(b"content-type", b"").split(b";")[0].strip() in NPY_TYPES:
            scope = {**scope, "path": NPY_PATH, "raw_path": NPY_PATH.encode()}
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._answer(send, 413, f"request body of {int(length)} bytes is over the limit of {self.max_bytes} bytes")
            return
        body = await self._read_body(receive, send)
        if body is None:
            return
        problem = await self._multipart_error(scope, body)
        if problem:
            await self._answer(send, 400, problem, close=False)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_with_retry_after(message: dict[str, Any]) -> None:
            headers = message.get("headers", [])
            if message["type"] == "http.response.start" and message["status"] == 503 \
                    and not any(k.lower() == b"retry-after" for k, _ in headers):
                message = {**message, "headers": [*headers, (b"retry-after", RETRY_AFTER_S.encode())]}
            await send(message)

        await self.app(scope, replay, send_with_retry_after)
