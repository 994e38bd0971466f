"""The API-key check of every HTTP route but the probes (``auth.ApiKeys``: what is configured and how it is
compared). A valid key's ``auth.Access`` (the modes it may use) is put in the ASGI scope under ``ACCESS_SCOPE_KEY``
for the edges to hand to the data plane (``http.access_of``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dhat_serve.auth import OPEN_PATHS, ApiKeys
from dhat_serve.config import ServeConfig
from dhat_serve.errors import Unauthorized, refusal_response

BODY_METHODS = ("POST", "PUT", "PATCH")
ACCESS_SCOPE_KEY = "dhat.access"


async def drain_body(receive: Callable) -> None:
    """Read a request's body to its end (or the client's disconnect) and drop it."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class KeyCheck:
    """ASGI middleware: refuses (401 + ``WWW-Authenticate``) a request without a valid key, except probes."""

    def __init__(self, app: Callable, cfg: ServeConfig) -> None:
        # Starlette builds middleware in the worker when its app starts, not at import: the keys file is read here
        self.app, self.keys = app, ApiKeys.from_config(cfg)
        self.open = OPEN_PATHS if cfg.protect_metrics else (*OPEN_PATHS, "/metrics")

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if (
            scope["type"] != "http"
            or not self.keys.enabled
            or scope.get("path") in self.open
            or scope.get("method") == "OPTIONS"
        ):  # CORS preflights carry no credentials
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        problem, access = self.keys.identify(header.decode("latin-1") if header is not None else None)
        if problem is None:
            scope[ACCESS_SCOPE_KEY] = access
            await self.app(scope, receive, send)
            return
        refusal = Unauthorized(f"{problem}: {scope.get('path')} needs an API key")
        if scope.get("method") in BODY_METHODS:  # read what the client sends (the guard capped it) before refusing:
            await drain_body(receive)  # closing on unread bytes resets the connection before the 401 is read
        await refusal_response(refusal)(scope, receive, send)
