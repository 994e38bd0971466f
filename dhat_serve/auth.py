"""Optional API keys: ``Authorization: Bearer KEY`` on HTTP, the same ``authorization`` metadata on gRPC, and the
modes each key may use (robustness tiers).

Keys come from ``DHAT_API_KEYS_FILE`` (one key per line, ``#`` comments: the way to keep secrets out of the
environment and out of ``ps``) and/or ``DHAT_API_KEYS`` (comma-separated, every mode). A line of the file may
name the modes its key may use, the first one that key's default::

    k-public-7f3a   modes=merged          # a public client: only the merged (robust) answer
    k-internal-91c2                       # every mode (a plain line)

A key given ``all`` gets the two heads' logits too (``all`` answers them beside merged's): ``dhat serve`` warns
about a line that grants ``all`` without ``main`` and ``second``. A key configured twice is an error.

With no key configured every route is open, as before. With keys, every inference and metadata route needs one;
health checks stay open (a load balancer or kubelet has no key) and so does ``/metrics`` unless
``DHAT_PROTECT_METRICS=1``. A key is compared in constant time against every configured key, and a refused attempt
is one log line naming the route and the reason, never the key. Who the key is (``Access``) travels with the
request: HTTP's key check (``http.keycheck``) puts it in the ASGI scope, gRPC's servicer reads it from the call's
metadata; the data plane refuses a mode outside it (403 / PERMISSION_DENIED) and gives a request that names no
mode the key's first. Metadata routes stay open to every valid key, so a client can read the cards of the modes
it may not use (what an upgrade would buy).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from dhat_serve.config import ServeConfig, comma_list
from dhat_serve.contract import ALL, MAIN, REQUEST_MODES, SECOND
from dhat_serve.errors import Forbidden, Unauthorized

OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/v2/health/live", "/v2/health/ready")
"""Routes that answer without a key: what probes call."""

OPEN_RPCS = ("/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady")
"""gRPC health RPCs that answer without a key."""

MODES_FIELD = "modes="


@dataclass(frozen=True)
class Access:
    """The modes a request's key may use: ``modes`` None is every mode, else these, the first the key's default."""

    modes: tuple[str, ...] | None = None

    def default(self, artifact_default: str) -> str:
        """The mode of a request that names none: the key's first, else the artifact's default."""
        return self.modes[0] if self.modes else artifact_default

    def check(self, mode: str) -> None:
        """Raise ``Forbidden`` (403 / PERMISSION_DENIED) naming the key's modes when ``mode`` is not one of them."""
        if self.modes is not None and mode not in self.modes:
            raise Forbidden(f"this API key may not use mode {mode!r}; its modes: {', '.join(self.modes)}")


EVERY_MODE = Access()
"""The access of a request when no key is configured, or of a plain key line."""


def parse_key_line(line: str, where: str) -> tuple[str, Access] | None:
    """One line of the keys file: None for a blank or ``#`` line, else the key and its access; a malformed line is
    a ``ValueError`` naming ``where`` (the file and line number) and the fix."""
    tokens = line.split()
    comment = next((i for i, t in enumerate(tokens) if t.startswith("#")), len(tokens))
    if comment == 0:
        return None
    key, *fields = tokens[:comment]
    if not fields:
        return key, EVERY_MODE
    if len(fields) > 1 or not fields[0].startswith(MODES_FIELD):
        raise ValueError(f"{where}: expected 'KEY' or 'KEY modes=MODE[,MODE...]' (e.g. 'KEY modes=merged,all')")
    modes = tuple(m.strip() for m in fields[0][len(MODES_FIELD) :].split(","))
    unknown = [m for m in modes if m not in REQUEST_MODES]
    if not modes or unknown:
        raise ValueError(f"{where}: unknown mode(s) {unknown or ['']}; modes: {', '.join(REQUEST_MODES)}")
    return key, Access(modes)


class ApiKeys:
    """The configured keys (bytes) with what each may use, and the one check every protocol calls."""

    def __init__(self, keys: tuple[str, ...] | tuple[tuple[str, Access], ...], warnings: tuple[str, ...] = ()) -> None:
        pairs = [(k, EVERY_MODE) if isinstance(k, str) else k for k in keys]
        self.entries = tuple((k.encode(), access) for k, access in pairs if k)
        self.warnings = warnings  # what `dhat serve` prints at start (never a key)

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The keys alone."""
        return tuple(k for k, _ in self.entries)

    @classmethod
    def from_config(cls, cfg: ServeConfig) -> ApiKeys:
        """``DHAT_API_KEYS`` plus the lines of ``DHAT_API_KEYS_FILE``; a missing file or a malformed line is an error
        naming it."""
        entries: list[tuple[str, Access]] = [(k, EVERY_MODE) for k in comma_list(cfg.api_keys)]
        warnings: list[str] = []
        if cfg.api_keys_file:
            path = Path(cfg.api_keys_file)
            if not path.is_file():
                raise ValueError(f"DHAT_API_KEYS_FILE={cfg.api_keys_file}: no such file (one key per line)")
            for number, line in enumerate(path.read_text().splitlines(), 1):
                where = f"DHAT_API_KEYS_FILE={cfg.api_keys_file} line {number}"
                parsed = parse_key_line(line, where)
                if parsed is None:
                    continue
                if any(hmac.compare_digest(parsed[0].encode(), k.encode()) for k, _ in entries):  # which tier?
                    raise ValueError(f"{where}: this key is already configured (in DHAT_API_KEYS or a line above)")
                if parsed[1].modes and ALL in parsed[1].modes and not {MAIN, SECOND} <= set(parsed[1].modes):
                    warnings.append(f"{where}: mode {ALL} answers main's and second's logits beside merged's")
                entries.append(parsed)
        return cls(tuple(entries), tuple(warnings))

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (no key: every route is open)."""
        return bool(self.entries)

    def identify(self, authorization: str | None) -> tuple[str | None, Access]:
        """Why an ``Authorization`` value is refused (None: accepted) and the matched key's access. Compares with
        every key, in constant time."""
        if not authorization:
            return "no API key (send Authorization: Bearer KEY)", EVERY_MODE
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "the Authorization header must be 'Bearer KEY'", EVERY_MODE
        given, found = token.strip().encode(), None
        for key, access in self.entries:
            if hmac.compare_digest(given, key) and found is None:
                found = access
        return (None, found) if found is not None else ("wrong API key", EVERY_MODE)

    def problem(self, authorization: str | None) -> str | None:
        """Why an ``Authorization`` value is refused (``None``: accepted)."""
        return self.identify(authorization)[0]

    def access(self, authorization: str | None, where: str) -> Access:
        """The access of a valid key (every mode when no key is configured), else ``Unauthorized`` naming ``where``."""
        if not self.enabled:
            return EVERY_MODE
        problem, access = self.identify(authorization)
        if problem is not None:
            raise Unauthorized(f"{problem}: {where} needs an API key")  # the reason, never the key
        return access
