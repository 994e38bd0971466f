"""Optional API keys: ``Authorization: Bearer KEY`` on HTTP, the same ``authorization`` metadata on gRPC.

Keys come from ``DHAT_API_KEYS_FILE`` (one key per line, ``#`` comments: the way to keep secrets out of
the environment and out of ``ps``) and/or ``DHAT_API_KEYS`` (comma-separated). With no key configured
every route is open, as before. With keys, every inference and metadata route needs one; health
checks stay open (a load balancer or kubelet has no key) and so does ``/metrics`` unless
``DHAT_PROTECT_METRICS=1``. A key is compared in constant time against every configured key, and a
refused attempt is one log line naming the route and the reason, never the key.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dhat_serve.config import ServeConfig, comma_list
from dhat_serve.errors import Unauthorized, send_refusal

OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/v2/health/live", "/v2/health/ready")
"""Routes that answer without a key: what probes call."""

OPEN_RPCS = ("/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady")
"""gRPC health RPCs that answer without a key."""


class ApiKeys:
    """The configured keys (bytes) and the one check every protocol calls."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = tuple(k.encode() for k in keys if k)

    @classmethod
    def from_config(cls, cfg: ServeConfig) -> ApiKeys:
        """``DHAT_API_KEYS`` plus the lines of ``DHAT_API_KEYS_FILE``; a missing file is an error naming it."""
        keys = list(comma_list(cfg.api_keys))
        if cfg.api_keys_file:
            path = Path(cfg.api_keys_file)
            if not path.is_file():
                raise ValueError(f"DHAT_API_KEYS_FILE={cfg.api_keys_file}: no such file (one key per line)")
            keys += [line.strip() for line in path.read_text().splitlines()
                     if line.strip() and not line.lstrip().startswith("#")]
        return cls(tuple(keys))

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (no key: every route is open)."""
        return bool(self.keys)

    def problem(self, authorization: str | None) -> str | None:
        """Why an ``Authorization`` value is refused (``None``: accepted). Compares with every key, in constant time."""
        if not authorization:
            return "no API key (send Authorization: Bearer KEY)"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "the Authorization header must be 'Bearer KEY'"
        given = token.strip().encode()
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(given, key)
        return None if matched else "wrong API key"


class KeyCheck:
    """ASGI middleware: refuses (401 + ``WWW-Authenticate``) a request without a valid key, except probes."""

    def __init__(self, app: Callable, keys: ApiKeys, protect_metrics: bool) -> None:
        self.app, self.keys = app, keys
        self.open = OPEN_PATHS if protect_metrics else (*OPEN_PATHS, "/metrics")

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not self.keys.enabled or scope.get("path") in self.open \
                or scope.get("method") == "OPTIONS":  # CORS preflights carry no credentials
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        problem = self.keys.problem(header.decode("latin-1") if header is not None else None)
        if problem is None:
            await self.app(scope, receive, send)
            return
        await send_refusal(send, Unauthorized(f"{problem}: {scope.get('path')} needs an API key"), close=False)
