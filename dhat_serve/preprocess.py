"""Request validation and pre-processing, as plain functions that tests call without a server.

Everything a client can get wrong raises ``InputError`` with a message that says what was wrong; the
service turns it into an HTTP 400. Nothing here trusts the client: sizes are checked before decoding.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from dhat_serve.contract import LOGITS

ACCEPTED_FORMATS = ("PNG", "JPEG")


class InputError(ValueError):
    """A bad request; the message is returned to the client as is."""


def decode_image(data: bytes, channels: int, size: int, max_pixels: int) -> np.ndarray:
    """PNG / JPEG bytes -> (C, H, W) float32 in [0, 1], converted to the artifact's channels and size."""
    if not data:
        raise InputError("the image file is empty")
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise InputError("the uploaded file is not an image (expected PNG or JPEG)") from None
    except Image.DecompressionBombError as exc:  # PIL refuses headers past 2x its own pixel limit itself
        raise InputError(f"the image header claims too many pixels (a decompression bomb?): {exc}") from None
    if img.format not in ACCEPTED_FORMATS:
        raise InputError(f"image format {img.format} is not accepted; send PNG or JPEG")
    width, height = img.size
    if width * height > max_pixels:
        raise InputError(f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"the image could not be decoded (truncated or corrupt): {exc}") from None
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1).copy()


def validate_tensor(inputs: Any, shape: Sequence[int], max_batch: int) -> np.ndarray:
    """A JSON nested list -> (N, C, H, W) float32 in [0, 1], or an InputError naming the problem."""
    expected = f"(N, {', '.join(map(str, shape))})"
    if not isinstance(inputs, list):
        raise InputError(f"inputs must be a nested list of shape {expected}, got {type(inputs).__name__}")
    if len(inputs) == 0:
        raise InputError("inputs is an empty batch; send at least one image")
    if len(inputs) > max_batch:
        raise InputError(f"batch of {len(inputs)} images is over the limit of {max_batch}")
    try:
        arr = np.asarray(inputs)
    except (ValueError, TypeError):
        raise InputError(f"inputs is ragged; every image must have shape ({', '.join(map(str, shape))})") from None
    return validate_array(arr, shape, max_batch)


def validate_array(arr: np.ndarray, shape: Sequence[int], max_batch: int) -> np.ndarray:
    """An array from JSON or a ``.npy`` body -> (N, C, H, W) float32 in [0, 1], or an InputError naming the problem."""
    expected = f"(N, {', '.join(map(str, shape))})"
    if arr.ndim >= 1 and len(arr) == 0:
        raise InputError("inputs is an empty batch; send at least one image")
    if arr.ndim >= 1 and len(arr) > max_batch:
        raise InputError(f"batch of {len(arr)} images is over the limit of {max_batch}")
    if arr.dtype.kind not in "iuf":
        raise InputError(f"inputs must be numbers (got {arr.dtype.kind!r} values, e.g. strings, booleans or nulls)")
    if arr.shape[1:] != tuple(shape) or arr.ndim != len(shape) + 1:
        raise InputError(f"inputs must have shape {expected}; got {tuple(arr.shape)}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise InputError("inputs contain NaN or infinity")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"inputs must be in [0, 1] (pixel values / 255); got values from {lo:g} to {hi:g}")
    return np.ascontiguousarray(arr)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, classes) logits, stable for large logits (max subtracted)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def check_top_k(top_k: int, num_classes: int) -> int:
    """``top_k`` clipped to the number of classes; an ``InputError`` (HTTP 400) if below 1."""
    if not 1 <= top_k <= num_classes:
        raise InputError(f"top_k must be between 1 and {num_classes}, got {top_k}")
    return top_k


def describe(logits: np.ndarray, class_names: Sequence[str], top_k: int) -> dict[str, Any]:
    """One image's logits (C,) -> label, class name, confidence and the top-k list."""
    probs = softmax(logits.astype(np.float64))
    order = np.argsort(-probs)[:top_k]
    label = int(order[0])
    return {
        "label": label, "class_name": class_names[label], "confidence": float(probs[label]),
        "top_k": [{"label": int(i), "class_name": class_names[int(i)], "probability": float(probs[i])} for i in order],
    }


def batch_result(logits: np.ndarray) -> dict[str, Any]:
    """(N, C) logits -> labels, probabilities and logits as lists (JSON-safe finite floats)."""
    probs = softmax(logits.astype(np.float64))
    clean = lambda a: [[float(v) if math.isfinite(v) else 0.0 for v in row] for row in a.tolist()]  # noqa: E731
    return {"labels": logits.argmax(-1).astype(int).tolist(), "probabilities": clean(probs), LOGITS: clean(logits)}
