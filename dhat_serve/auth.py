"""Optional API keys: ``Authorization: Bearer KEY`` on HTTP, the same ``authorization`` metadata on gRPC.

Keys come from ``DHAT_API_KEYS_FILE`` (one key per line, ``#`` comments: the way to keep secrets out of
the environment and out of ``ps``) and/or ``DHAT_API_KEYS`` (comma-separated). With no key configured
every route is open, as before. With keys, every inference and metadata route needs one; health
checks stay open (a load balancer or kubelet has no key) and so does ``/metrics`` unless
``DHAT_PROTECT_METRICS=1``. A key is compared in constant time against every configured key, and a
refused attempt is one log line naming the route and the reason, never the key. HTTP checks keys in
``http.keycheck``, gRPC in ``oip.grpc_service.KeyInterceptor``; both ask ``ApiKeys.problem``.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from dhat_serve.config import ServeConfig, comma_list

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
            keys += [
                line.strip()
                for line in path.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
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
