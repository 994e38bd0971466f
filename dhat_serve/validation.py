"""Request inputs: one image decoded, one tensor checked, as plain functions tests call without a server.

``validate_array`` is the one check every tensor passes, whichever protocol brought it: JSON
``/predict`` (after ``json_array``), a ``.npy`` body and the Open Inference Protocol's ``infer``.
So the same bad tensor gets the same 400 and the same message everywhere. Everything a client can get
wrong raises ``errors.BadRequest``; nothing here trusts the client: sizes are checked before decoding.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from dhat_serve.errors import BadRequest

ACCEPTED_FORMATS = ("PNG", "JPEG")


def decode_image(data: bytes, channels: int, size: int, max_pixels: int) -> np.ndarray:
    """PNG / JPEG bytes -> (C, H, W) float32 in [0, 1], converted to the artifact's channels and size."""
    if not data:
        raise BadRequest("the image file is empty")
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise BadRequest("the uploaded file is not an image (expected PNG or JPEG)") from None
    except Image.DecompressionBombError as exc:  # PIL refuses headers past 2x its own pixel limit itself
        raise BadRequest(f"the image header claims too many pixels (a decompression bomb?): {exc}") from None
    if img.format not in ACCEPTED_FORMATS:
        raise BadRequest(f"image format {img.format} is not accepted; send PNG or JPEG")
    width, height = img.size
    if width * height > max_pixels:
        raise BadRequest(f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(f"the image could not be decoded (truncated or corrupt): {exc}") from None
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1).copy()


def check_batch_size(n: int, max_batch: int) -> None:
    """1 <= ``n`` <= ``max_batch``, else a 400 (as Triton answers a batch over ``max_batch_size``)."""
    if n == 0:
        raise BadRequest("inputs is an empty batch; send at least one image")
    if n > max_batch:
        raise BadRequest(f"batch of {n} images is over the limit of {max_batch}")


def json_array(inputs: Any, shape: Sequence[int], max_batch: int) -> np.ndarray:
    """A JSON nested list -> an array, refusing a non-list, a batch size out of range (before ``np.asarray``: a
    huge list costs nothing to refuse) and a ragged list; the rest is ``validate_array``'s, which the data plane
    runs."""
    expected = f"(N, {', '.join(map(str, shape))})"
    if not isinstance(inputs, list):
        raise BadRequest(f"inputs must be a nested list of shape {expected}, got {type(inputs).__name__}")
    check_batch_size(len(inputs), max_batch)
    try:
        return np.asarray(inputs)
    except (ValueError, TypeError):
        raise BadRequest(f"inputs is ragged; every image must have shape ({', '.join(map(str, shape))})") from None


def validate_tensor(inputs: Any, shape: Sequence[int], max_batch: int) -> np.ndarray:
    """A JSON nested list -> (N, C, H, W) float32 in [0, 1], or a BadRequest naming the problem."""
    return validate_array(json_array(inputs, shape, max_batch), shape, max_batch)


def validate_array(arr: np.ndarray, shape: Sequence[int], max_batch: int) -> np.ndarray:
    """Any client's tensor (JSON, ``.npy``, OIP) -> (N, C, H, W) float32 in [0, 1], or a BadRequest naming the problem.

    ``shape`` is the artifact's (C, H, W); the checks run in one order (batch size, type, shape,
    finiteness, range) so one bad tensor always gets one message.
    """
    expected = f"(N, {', '.join(map(str, shape))})"
    if arr.ndim >= 1:
        check_batch_size(len(arr), max_batch)
    if arr.dtype.kind not in "iuf":
        raise BadRequest(f"inputs must be numbers (got {arr.dtype.kind!r} values, e.g. strings, booleans or nulls)")
    if arr.shape[1:] != tuple(shape) or arr.ndim != len(shape) + 1:
        raise BadRequest(f"inputs must have shape {expected}; got {tuple(arr.shape)}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise BadRequest("inputs contain NaN or infinity")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise BadRequest(f"inputs must be in [0, 1] (pixel values / 255); got values from {lo:g} to {hi:g}")
    return np.ascontiguousarray(arr)
