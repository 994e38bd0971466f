"""``POST /predict`` with a ``.npy`` body: the binary twin of the JSON ``/predict``, answered with a ``.npy``.

BentoML's typed ``/predict`` API parses JSON, so a ``.npy`` body (``Content-Type: application/x-npy`` or
``application/octet-stream``) is answered by ``NpyPredict``, the middleware the service installs right
beside its ``predict`` API: it answers that one kind of request itself and passes every other request
on untouched. It decodes the body into an ``InferRequest`` and calls ``DataPlane.infer``, as every protocol does.

The answer is (N, classes) float32 logits for one mode, or (3, N, classes) for ``all``, stacked in the
order of ``contract.REQUEST_OUTPUTS["all"]``; ``X-Dhat-Logits-Of`` names the mode of each slice.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from dhat_serve.contract import REQUEST_OUTPUTS
from dhat_serve.dataplane import DataPlane, Decoded, InferRequest, InputSpec
from dhat_serve.errors import BadRequest, Refusal, refusal_response

PREDICT_PATH = "/predict"
NPY_TYPES = (b"application/x-npy", b"application/octet-stream")


def is_npy_predict(scope: dict[str, Any]) -> bool:
    """Whether an ASGI request is ``POST /predict`` with a ``.npy`` content type."""
    if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != PREDICT_PATH:
        return False
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
    return content_type.split(b";")[0].strip().lower() in NPY_TYPES


async def predict_npy(plane: DataPlane, request: Request) -> Response:
    """Decode the ``.npy`` tensor, run the requested mode through the data plane, answer its logits as ``.npy``."""
    body = await request.body()

    def decode(spec: InputSpec) -> Decoded:
        try:
            return Decoded(np.load(io.BytesIO(body), allow_pickle=False))
        except (ValueError, OSError, EOFError) as exc:
            raise BadRequest(f"the body is not a .npy array ({exc})") from None

    result = await plane.infer(InferRequest("predict_npy", request.query_params.get("mode"), decode))
    outputs = result.outputs
    logits = np.stack(list(outputs.values())) if len(outputs) > 1 else next(iter(outputs.values()))
    buf = io.BytesIO()
    np.save(buf, logits.astype(np.float32), allow_pickle=False)
    return Response(
        buf.getvalue(),
        media_type="application/x-npy",
        headers={
            "X-Dhat-Mode": result.model,
            "X-Dhat-Logits-Of": ",".join(REQUEST_OUTPUTS[result.model].values()),
            "X-Dhat-Artifact-Version": result.artifact["version"],
        },
    )


class NpyPredict:
    """ASGI middleware: answers ``POST /predict`` with a ``.npy`` body, passes everything else on."""

    def __init__(self, app: Callable, plane: Callable[[], DataPlane]) -> None:
        self.app, self.plane = app, plane

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if not is_npy_predict(scope):
            await self.app(scope, receive, send)
            return
        try:
            response = await predict_npy(self.plane(), Request(scope, receive))
        except Refusal as exc:
            response = refusal_response(exc, PREDICT_PATH)
        await response(scope, receive, send)
