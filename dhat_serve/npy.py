"""``POST /predict`` with a ``.npy`` body: the binary twin of the JSON ``/predict``, answered with a ``.npy``.

BentoML's typed ``/predict`` API parses JSON, so a ``.npy`` body (``Content-Type: application/x-npy`` or
``application/octet-stream``) is answered by ``NpyPredict``, the middleware the service installs right
beside its ``predict`` API: it answers that one kind of request itself and passes every other request
on untouched. The tensor passes the same ``validate_array`` as JSON and the Open Inference Protocol.

The answer is (N, classes) float32 logits for one mode, or (3, N, classes) for ``all``, stacked in the
order of ``contract.REQUEST_OUTPUTS["all"]``; ``X-Dhat-Logits-Of`` names the mode of each slice.
"""

from __future__ import annotations

import io
from typing import Any, Callable

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from dhat_serve.contract import DEFAULT_REQUEST_MODE, REQUEST_OUTPUTS, parse_mode
from dhat_serve.engine import Engine
from dhat_serve.errors import BadRequest, Refusal, json_response
from dhat_serve.observer import ANY_MODE, observed
from dhat_serve.state import ProcessState
from dhat_serve.validation import validate_array

PREDICT_PATH = "/predict"
NPY_TYPES = (b"application/x-npy", b"application/octet-stream")


def is_npy_predict(scope: dict[str, Any]) -> bool:
    """Whether an ASGI request is ``POST /predict`` with a ``.npy`` content type."""
    if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != PREDICT_PATH:
        return False
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
    return content_type.split(b";")[0].strip().lower() in NPY_TYPES


async def predict_npy(engine: Engine, request: Request) -> Response:
    """Validate the ``.npy`` tensor, run the requested mode, answer its logits as ``.npy``."""
    try:
        mode = parse_mode(request.query_params.get("mode", DEFAULT_REQUEST_MODE), allow_all=True)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    try:
        array = np.load(io.BytesIO(await request.body()), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest(f"the body is not a .npy array ({exc})") from None
    images = validate_array(array, engine.runtime.manifest.input_shape, engine.cfg.max_batch)
    outputs = await engine.infer(mode, images)
    logits = np.stack(list(outputs.values())) if len(outputs) > 1 else next(iter(outputs.values()))
    buf = io.BytesIO()
    np.save(buf, logits.astype(np.float32), allow_pickle=False)
    return Response(buf.getvalue(), media_type="application/x-npy",
                    headers={"X-Dhat-Mode": mode, "X-Dhat-Logits-Of": ",".join(REQUEST_OUTPUTS[mode].values()),
                             "X-Dhat-Artifact-Version": engine.runtime.manifest.version})


class NpyPredict:
    """ASGI middleware: answers ``POST /predict`` with a ``.npy`` body, passes everything else on."""

    def __init__(self, app: Callable, state: ProcessState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if not is_npy_predict(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        mode = request.query_params.get("mode", DEFAULT_REQUEST_MODE)
        try:
            response = await observed(self.state.observer, "predict_npy", mode if mode in REQUEST_OUTPUTS else ANY_MODE,
                                      lambda: predict_npy(self.state.require(), request))
        except Refusal as exc:
            response = json_response(exc, PREDICT_PATH)
        await response(scope, receive, send)
