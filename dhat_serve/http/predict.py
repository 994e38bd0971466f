"""``POST /classify`` and ``POST /predict``: the project's own HTTP routes, each read top to bottom.

Every route decodes its request completely here, inside ``DataPlane.decoding`` (so a malformed body is counted as
the data plane counts its refusals), into one ``InferRequest``, calls ``DataPlane.infer`` and encodes the
``InferResult`` (``http.answers``). A refusal raised anywhere on the way is answered by the app's one handler
(``errors.refusal_response``). Where the mode arrives depends on the body, as its format allows:

- ``/classify``: multipart/form-data, the file field ``image`` (PNG or JPEG) and the fields ``mode``, ``top_k``;
- ``/predict`` with a JSON body: ``{"inputs": (N, C, H, W) nested lists in [0, 1], "mode": ...}``;
- ``/predict`` with a ``.npy`` body (``Content-Type: application/x-npy`` or ``application/octet-stream``):
  the tensor itself, ``?mode=`` in the query, answered with (N, classes) float32 logits as ``.npy`` (for ``all``,
  (3, N, classes) stacked in the order of ``contract.REQUEST_OUTPUTS["all"]``; ``X-Dhat-Logits-Of`` names them).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dhat_serve.contract import REQUEST_OUTPUTS
from dhat_serve.dataplane import DataPlane, InferRequest, InferResult
from dhat_serve.errors import BadRequest
from dhat_serve.http import access_of, plane_of
from dhat_serve.http.answers import check_top_k, classify_answer, predict_answer
from dhat_serve.oip.codec import loads
from dhat_serve.validation import decode_image, json_array

NPY_TYPES = ("application/x-npy", "application/octet-stream")
NPY_MAGIC = b"\x93NUMPY"
IMAGE_FIELD = "image"


def optional_text(value: Any, field: str) -> str | None:
    """A form or JSON field that is text when given: None when absent, else the text (an empty one too: an empty
    mode is an unknown mode, a 404, as it always was), or a 400 for anything else."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be text, got {type(value).__name__}")
    return value


def form_top_k(value: Any) -> int | None:
    """``top_k`` from a form field: None when absent, else a decimal integer (its range is ``check_top_k``'s)."""
    text = optional_text(value, "top_k")
    if text is None:
        return None
    if not (text.isascii() and text.removeprefix("-").isdigit()):
        raise BadRequest(f"top_k must be an integer, got {text!r}")
    return int(text)


async def classify(request: Request) -> Response:
    """``POST /classify``: one image file in, the mode's label, class name, confidence and top-k out."""
    plane, access = plane_of(request), access_of(request)
    names = plane.engine.runtime.manifest.class_names
    with plane.decoding("classify", None, known=False):
        form = await multipart_form(request)
    try:
        with plane.decoding("classify", form.get("mode") if isinstance(form.get("mode"), str) else None, access=access):
            mode = optional_text(form.get("mode"), "mode")
            top_k = check_top_k(form_top_k(form.get("top_k")), len(names))
            image = await form_image(plane, form.get(IMAGE_FIELD))
    finally:
        await form.close()  # spooled uploads
    result = await plane.infer(InferRequest("classify", mode, image[None], access=access))
    return JSONResponse(classify_answer(result.mode, result.outputs, names, top_k, result.artifact))


async def multipart_form(request: Request) -> FormData:
    """The request's multipart form, or a 400 naming what is wrong with it (Starlette answers its own 400 as text)."""
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data") and "boundary=" not in content_type.lower():
        raise BadRequest("multipart/form-data request without a boundary")
    try:
        return await request.form()
    except (MultiPartException, HTTPException) as exc:
        raise BadRequest(f"malformed multipart/form-data body: {getattr(exc, 'detail', None) or exc}") from None


async def form_image(plane: DataPlane, upload: Any) -> np.ndarray:
    """The uploaded file as the artifact's (C, H, W) image in [0, 1] (``validation.decode_image``), or a 400."""
    if not isinstance(upload, UploadFile):
        raise BadRequest(f"send the image as the multipart file field {IMAGE_FIELD!r} (a PNG or JPEG file)")
    channels, size, _ = plane.input_spec().shape
    return decode_image(await upload.read(), channels, size, plane.engine.cfg.max_image_pixels)


async def predict(request: Request) -> Response:
    """``POST /predict``: a batch as JSON (answered as JSON) or as ``.npy`` (answered as ``.npy``)."""
    plane, access = plane_of(request), access_of(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() in NPY_TYPES:
        mode = request.query_params.get("mode")
        with plane.decoding("predict_npy", mode, access=access):
            images = npy_array(await request.body(), plane.input_spec().max_batch)
        return npy_response(await plane.infer(InferRequest("predict_npy", mode, images, access=access)))
    body = await request.body()
    with plane.decoding("predict", None, known=False):
        doc = loads(body)
        if not isinstance(doc, dict) or "inputs" not in doc:
            raise BadRequest('the body must be a JSON object {"inputs": (N, C, H, W) nested lists, "mode": ...}')
        mode = optional_text(doc.get("mode"), "mode")
    with plane.decoding("predict", mode, access=access):
        spec = plane.input_spec()
        images = json_array(doc["inputs"], spec.shape, spec.max_batch)  # validate_array: the data plane's
    result = await plane.infer(InferRequest("predict", mode, images, access=access))
    return JSONResponse(predict_answer(result.mode, result.outputs, result.artifact))


def npy_array(body: bytes, max_batch: int) -> np.ndarray:
    """A ``.npy`` body as an array, read by its header and never unpickled: a format other than ``.npy`` (a ``.npz``
    zip, a pickle), an object dtype, a header that promises more bytes than the body holds (numpy would allocate
    them first) or a batch over ``max_batch`` is a 400. Its shape, type and range are the data plane's check."""
    if not body.startswith(NPY_MAGIC):
        raise BadRequest("the body is not a .npy array (it must start with the .npy magic bytes, \\x93NUMPY)")
    stream = io.BytesIO(body)
    try:
        major, _ = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(stream)
        if dtype.hasobject:
            raise BadRequest("the .npy array holds Python objects; send numbers")
        if shape and shape[0] > max_batch:
            raise BadRequest(f"batch of {shape[0]} images is over the limit of {max_batch}")
        if math.prod(shape) * dtype.itemsize != len(body) - stream.tell():
            raise BadRequest(f"the .npy header's shape {shape} ({dtype}) does not match the {len(body)}-byte body")
        stream.seek(0)  # read_array reads the header again
        return np.lib.format.read_array(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest(f"the body is not a .npy array ({exc})") from None


def npy_response(result: InferResult) -> Response:
    """The logits as ``.npy``: (N, classes) for one mode, (3, N, classes) for ``all``, with the headers naming them."""
    outputs = result.outputs
    logits = np.stack(list(outputs.values())) if len(outputs) > 1 else next(iter(outputs.values()))
    buf = io.BytesIO()
    np.save(buf, logits.astype(np.float32), allow_pickle=False)
    return Response(
        buf.getvalue(),
        media_type="application/x-npy",
        headers={
            "X-Dhat-Mode": result.mode,
            "X-Dhat-Logits-Of": ",".join(REQUEST_OUTPUTS[result.mode].values()),
            "X-Dhat-Artifact-Version": result.artifact["version"],
        },
    )
