"""The HTTP edge of a worker: one Starlette app (``http.app``) for every route BentoML does not own itself
(``/classify``, ``/predict``, ``/info`` and the Open Inference Protocol), the request guard and the API-key check in
front of it, the answers of ``/classify`` and ``/predict``, the SIGTERM drain and the log filter.
"""

from __future__ import annotations

from starlette.requests import Request

from dhat_serve.dataplane import DataPlane


def plane_of(request: Request) -> DataPlane:
    """The worker's data plane (the app's ``state.plane`` callable), or a 503 ``starting`` refusal while it loads."""
    return request.app.state.plane()
