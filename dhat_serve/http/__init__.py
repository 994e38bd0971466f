"""The HTTP edge of a worker: one Starlette app (``http.app``) for every route BentoML does not own itself
(``/classify``, ``/predict``, ``/info`` and the Open Inference Protocol), the request guard and the API-key check in
front of it, the answers of ``/classify`` and ``/predict``, the SIGTERM drain and the log filter.
"""

from __future__ import annotations

from starlette.requests import Request

from dhat_serve.auth import EVERY_MODE, Access
from dhat_serve.dataplane import DataPlane
from dhat_serve.http.keycheck import ACCESS_SCOPE_KEY


def plane_of(request: Request) -> DataPlane:
    """The worker's data plane (the app's ``state.plane`` callable), or a 503 ``starting`` refusal while it loads."""
    return request.app.state.plane()


def access_of(request: Request) -> Access:
    """The modes the request's API key may use (``http.keycheck`` put them in the scope; no keys: every mode)."""
    return request.scope.get(ACCESS_SCOPE_KEY, EVERY_MODE)
