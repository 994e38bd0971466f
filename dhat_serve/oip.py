"""The Open Inference Protocol v2 (KServe v2 / Triton HTTP) request and response formats, as plain functions.

Spec: github.com/kserve/open-inference-protocol (``inference_rest.md``) and Triton's binary tensor data
extension (``extension_binary_data.md``). A request body is a JSON header, optionally followed by raw
tensor bytes: then the ``Inference-Header-Content-Length`` header gives the JSON's length and each input
with ``parameters.binary_data_size`` takes that many bytes, in input order. Outputs are JSON ``data``
lists, or raw bytes after the JSON when the request asks (``binary_data`` per output, or
``binary_data_output`` for all). Every malformed request is an ``errors.BadRequest`` with a message;
the tensor itself passes ``validation.validate_array``, the check ``/predict`` uses, so one bad tensor
gets one answer on every protocol.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dhat_serve.errors import BadRequest
from dhat_serve.validation import validate_array

HEADER_LENGTH = "inference-header-content-length"
DATATYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT8": np.int8, "INT16": np.int16,
             "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "BOOL": np.bool_}


@dataclass(frozen=True)
class InferRequest:
    """A parsed ``infer`` request: the images (N, C, H, W) float32, which outputs, and how to send them."""

    id: str | None
    images: np.ndarray
    outputs: tuple[str, ...]
    binary: dict[str, bool]
    timeout_s: float | None = None  # the request's own deadline (Triton's ``timeout`` parameter), if it set one


def request_timeout(params: dict[str, Any]) -> float | None:
    """A request's Triton parameters ``timeout`` (microseconds; 0 or absent: the server's deadline) and
    ``priority`` (refused unless 0: every mode's queue is served in arrival order). Other parameters are
    ignored, as the protocol allows. Shared by HTTP and gRPC, so both refuse the same values the same way."""
    priority = params.get("priority", 0)
    if type(priority) is not int or priority < 0:
        raise BadRequest(f"parameter 'priority' must be a non-negative integer, got {priority!r}")
    if priority != 0:
        raise BadRequest(f"parameter 'priority' {priority} is not supported: each mode's queue is served in "
                         "arrival order; send 0 or leave it out")
    timeout = params.get("timeout", 0)
    if type(timeout) is not int or timeout < 0:
        raise BadRequest(f"parameter 'timeout' must be a non-negative integer of microseconds, got {timeout!r}")
    return timeout / 1e6 if timeout else None


def _json_header(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    if header_length is None:
        json_part, rest = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise BadRequest(f"Inference-Header-Content-Length must be an integer, got {header_length!r}") from None
        if not 0 < n <= len(body):
            raise BadRequest(f"Inference-Header-Content-Length {n} does not fit a body of {len(body)} bytes")
        json_part, rest = body[:n], body[n:]
    try:
        doc = json.loads(json_part)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"the request header is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadRequest("the request must be a JSON object with an \"inputs\" list")
    return doc, rest


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    """``obj["parameters"]``: absent is {}, anything but a JSON object is a BadRequest naming ``where``."""
    params = obj.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequest(f"{where} \"parameters\" must be a JSON object, got {type(params).__name__}")
    return params


def _flag(params: dict[str, Any], key: str, default: bool) -> bool:
    """A boolean parameter (``binary_data``, ``binary_data_output``): true or false, never a string or number."""
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"parameter {key!r} must be true or false, got {value!r}")
    return value


def _tensor(spec: dict[str, Any], rest: bytes, offset: int) -> tuple[np.ndarray, int]:
    """One input tensor from JSON ``data`` or from the binary part at ``offset``; returns (array, new offset)."""
    dtype_name = spec.get("datatype")
    if not isinstance(dtype_name, str) or dtype_name not in DATATYPES:
        raise BadRequest(f"input {spec.get('name')!r}: datatype {dtype_name!r} is not supported; send FP32")
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRequest(f"input {spec.get('name')!r}: shape must be a list of non-negative integers, got {shape!r}")
    count = math.prod(shape)
    size = _parameters(spec, f"input {spec.get('name')!r}:").get("binary_data_size")
    if size is not None:
        expected = count * np.dtype(DATATYPES[dtype_name]).itemsize
        if type(size) is not int or size != expected:
            raise BadRequest(f"input {spec['name']!r}: binary_data_size {size!r} but shape {shape} of {dtype_name} "
                           f"needs {expected} bytes")
        if offset + size > len(rest):
            raise BadRequest(f"input {spec['name']!r}: the body holds {len(rest) - offset} bytes of tensor data, "
                           f"{size} announced")
        array = np.frombuffer(rest, dtype=DATATYPES[dtype_name], count=count, offset=offset).reshape(shape)
        return array, offset + size
    data = spec.get("data")
    if data is None:
        raise BadRequest(f"input {spec.get('name')!r} has neither \"data\" nor parameters.binary_data_size")
    try:
        array = np.asarray(data, dtype=DATATYPES[dtype_name])
    except (ValueError, TypeError, RecursionError):
        raise BadRequest(f"input {spec.get('name')!r}: \"data\" is not a (nested) list of {dtype_name} numbers") from None
    if array.size != count:
        raise BadRequest(f"input {spec.get('name')!r}: shape {shape} needs {count} values, \"data\" has {array.size}")
    return array.reshape(shape), offset


def parse_infer(body: bytes, header_length: str | None, input_name: str, image_shape: tuple[int, int, int],
                output_names: tuple[str, ...], max_batch: int, binary_default: bool = False) -> InferRequest:
    """Check an ``infer`` body against the model: one FP32 input ``input_name`` of shape (N, C, H, W) in [0, 1].

    ``image_shape`` is the artifact's (C, H, W); ``output_names`` what the requested model answers.
    """
    doc, rest = _json_header(body, header_length)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("\"inputs\" must be a non-empty list of tensors")
    offset, images = 0, None
    for spec in inputs:
        if not isinstance(spec, dict):
            raise BadRequest("each input must be a JSON object with name, shape, datatype")
        array, offset = _tensor(spec, rest, offset)
        if spec.get("name") != input_name:
            raise BadRequest(f"unknown input {spec.get('name')!r}; this model has one input {input_name!r}")
        images = array
    if offset != len(rest):
        raise BadRequest(f"the body has {len(rest) - offset} bytes of tensor data that no input announced")
    if len(inputs) != 1:
        raise BadRequest(f"this model takes exactly one input {input_name!r}, got {len(inputs)}")
    assert images is not None
    if images.dtype != np.float32:
        raise BadRequest(f"input {input_name!r} must be FP32, got {inputs[0]['datatype']}")
    images = validate_array(images, image_shape, max_batch)
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"\"id\" must be a string, got {type(request_id).__name__}")
    timeout_s = request_timeout(_parameters(doc, "the request's"))
    return InferRequest(request_id, images, *_outputs(doc, output_names, binary_default), timeout_s)


def _outputs(doc: dict[str, Any], names: tuple[str, ...], binary_default: bool) -> tuple[tuple[str, ...], dict[str, bool]]:
    default = _flag(_parameters(doc, "the request's"), "binary_data_output", binary_default)
    asked = doc.get("outputs")
    if asked is None:
        return names, {n: default for n in names}
    if not isinstance(asked, list):
        raise BadRequest("\"outputs\" must be a list of {\"name\": ...} objects")
    chosen, binary = [], {}
    for spec in asked:
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or name not in names:
            raise BadRequest(f"unknown output {name!r}; this model's outputs: {', '.join(names)}")
        if name in binary:
            raise BadRequest(f"output {name!r} is asked for twice")  # as Triton answers
        chosen.append(name)
        binary[name] = _flag(_parameters(spec, f"output {name!r}:"), "binary_data", default)
    return tuple(chosen), binary


def encode_infer(model: str, version: str, request_id: str | None, outputs: dict[str, np.ndarray],
                 binary: dict[str, bool]) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length (for the HTTP header)."""
    entries, blobs = [], []
    for name, array in outputs.items():
        array = np.ascontiguousarray(array, dtype=np.float32)
        entry: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if binary.get(name):
            raw = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if request_id is not None:
        doc["id"] = request_id
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
