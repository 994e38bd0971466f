"""One log line per client error, never a traceback.

BentoML logs every exception an API raises (``log_exception`` in ``bentoml._internal.server.http_app``)
at ERROR with its traceback, including the 400s of a client's bad input (``InvalidArgument``, pydantic's
``ValidationError`` for an unknown mode). The service already logs each of those as one INFO line with
its message; this filter drops BentoML's duplicate, and lets every other record (real server errors)
through untouched.
"""

from __future__ import annotations

import logging

BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"
CLIENT_ERRORS = ("InvalidArgument", "BadInput", "ValidationError")


class ClientErrorFilter(logging.Filter):
    """Drop BentoML's traceback records whose exception is a client error (answered as a 4xx)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record carrying a client-error exception; True otherwise."""
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or type(exc).__name__ not in CLIENT_ERRORS


def install() -> None:
    """Attach the filter to BentoML's HTTP logger once per process."""
    logger = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(f, ClientErrorFilter) for f in logger.filters):
        logger.addFilter(ClientErrorFilter())
