"""The Open Inference Protocol v2 (KServe v2 / Triton HTTP) request and response formats, as plain functions.

Spec: github.com/kserve/open-inference-protocol (``inference_rest.md``) and Triton's binary tensor data
extension (``extension_binary_data.md``). A request body is a JSON header, optionally followed by raw
tensor bytes: then the ``Inference-Header-Content-Length`` header gives the JSON's length and each input
with ``parameters.binary_data_size`` takes that many bytes, in input order. Outputs are JSON ``data``
lists, or raw bytes after the JSON when the request asks (``binary_data`` per output, or
``binary_data_output`` for all). Every malformed request is an ``errors.BadRequest`` with a message.

``decode_tensor`` is the one OIP tensor decoder, for HTTP (JSON ``data`` or binary bytes) and gRPC
(typed ``fp32_contents`` or ``raw_input_contents``) alike; the data plane then passes the images through
``validation.validate_array``, the check ``/predict`` uses, so one bad tensor gets one answer everywhere.
Which outputs a model has is the data plane's check too: the codec only reads the names asked for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from dhat_serve.errors import BadRequest

HEADER_LENGTH = "inference-header-content-length"
MISREAD = 2.0**63
SHORT_LIST = 64
"""An integer literal that may not fit 64 bits (a run of digits after a fraction point or exponent is not one)."""
DATATYPES = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}


@dataclass(frozen=True)
class OipBody:
    """A parsed ``infer`` body: the images tensor (not yet checked against the model), the outputs asked for
    (None: all of the model's) and how to send each, the request's id and its own deadline."""

    id: str | None
    images: np.ndarray
    outputs: tuple[str, ...] | None
    binary: dict[str, bool]
    binary_default: bool
    timeout_s: float | None = None  # the request's own deadline (Triton's ``timeout`` parameter), if it set one


def request_timeout(params: dict[str, Any]) -> float | None:
    """A request's Triton parameters ``timeout`` (microseconds; 0 or absent: the server's deadline) and
    ``priority`` (refused unless 0: every mode's queue is served in arrival order). Other parameters are
    ignored, as the protocol allows. Shared by HTTP and gRPC, so both refuse the same values the same way."""
    priority = params.get("priority", 0)
    if type(priority) is not int or priority < 0:
        raise BadRequest(f"parameter 'priority' must be a non-negative integer, got {priority!r}")
    if priority != 0:
        raise BadRequest(
            f"parameter 'priority' {priority} is not supported: each mode's queue is served in "
            "arrival order; send 0 or leave it out"
        )
    timeout = params.get("timeout", 0)
    if type(timeout) is not int or timeout < 0:
        raise BadRequest(f"parameter 'timeout' must be a non-negative integer of microseconds, got {timeout!r}")
    return timeout / 1e6 if timeout else None


def loads(text: bytes) -> Any:
    """A JSON document: orjson for what it parses (the fast path, a few times the standard library's speed), the
    standard library for the rest, so what is accepted and each error's message stay the standard library's
    (``NaN`` and ``Infinity`` literals parse there and are then refused as non-finite; deep nesting is a 400).
    orjson reads an integer beyond 64 bits as a float, so a document where such a float appears outside tensor data
    is parsed again by the standard library (a shape of 10**30 stays an integer, refused for the size it asks). That
    check walks the parsed header, not the text: a regex over a 5 KB body cost 160 µs, orjson itself 9 µs."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        doc = None
    else:
        try:
            if not _misread(doc):
                return doc
        except RecursionError:  # nested deeper than Python recurses: the standard library refuses it below
            pass
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"the request header is not valid JSON ({exc})") from None


def _misread(obj: Any) -> bool:
    """Whether orjson may have read an integer beyond 64 bits as a float in ``obj``: a float of magnitude 2**63 or
    more outside tensor data (``data`` values, nested lists and lists longer than ``SHORT_LIST`` are data: a huge value
    there is refused by range; walking a 10 MB flat list took a second of the event loop)."""
    if isinstance(obj, float):
        return abs(obj) >= MISREAD
    if isinstance(obj, dict):
        return any(_misread(v) for k, v in obj.items() if k != "data")
    if isinstance(obj, list):  # a shape or a list of inputs is short; a long or nested list is data
        return 0 < len(obj) <= SHORT_LIST and not isinstance(obj[0], list) and any(_misread(v) for v in obj)
    return False


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
    doc = loads(json_part)
    if not isinstance(doc, dict):
        raise BadRequest('the request must be a JSON object with an "inputs" list')
    return doc, rest


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    """``obj["parameters"]``: absent is {}, anything but a JSON object is a BadRequest naming ``where``."""
    params = obj.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequest(f'{where} "parameters" must be a JSON object, got {type(params).__name__}')
    return params


def _flag(params: dict[str, Any], key: str, default: bool) -> bool:
    """A boolean parameter (``binary_data``, ``binary_data_output``): true or false, never a string or number."""
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"parameter {key!r} must be true or false, got {value!r}")
    return value


def decode_tensor(
    name: object, datatype: object, shape: object, data: object = None, raw: bytes | None = None
) -> np.ndarray:
    """One OIP tensor from its typed / JSON ``data`` or its ``raw`` bytes, as an array of ``shape``.

    HTTP and gRPC both call it, so a wrong datatype, shape or length gets one message on both."""
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise BadRequest(f"input {name!r}: datatype {datatype!r} is not supported; send FP32")
    if datatype != "FP32":
        raise BadRequest(f"input {name!r} must be FP32, got {datatype!r}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRequest(f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    count = math.prod(shape)
    if raw is not None:
        if len(raw) != count * 4:
            raise BadRequest(
                f"input {name!r}: shape {shape} of FP32 needs {count * 4} bytes, the request holds {len(raw)}"
            )
        return np.frombuffer(raw, dtype=np.float32).reshape(shape)
    if data is None:
        raise BadRequest(f'input {name!r} has neither "data" nor parameters.binary_data_size')
    try:
        array = np.asarray(data, dtype=np.float32)
    except (ValueError, TypeError, RecursionError):
        raise BadRequest(f'input {name!r}: "data" is not a (nested) list of FP32 numbers') from None
    if array.size != count:
        raise BadRequest(f'input {name!r}: shape {shape} needs {count} values, "data" has {array.size}')
    return array.reshape(shape)


def _binary_part(spec: dict[str, Any], rest: bytes, offset: int) -> tuple[bytes | None, int]:
    """An HTTP input's bytes after the JSON header (``binary_data_size``), or None for JSON ``data``; whether they
    fit the shape is ``decode_tensor``'s check, for HTTP and gRPC alike."""
    size = _parameters(spec, f"input {spec.get('name')!r}:").get("binary_data_size")
    if size is None:
        return None, offset
    if type(size) is not int or size < 0:
        raise BadRequest(f"input {spec.get('name')!r}: binary_data_size {size!r} must be a byte count")
    if offset + size > len(rest):
        raise BadRequest(
            f"input {spec.get('name')!r}: the body holds {len(rest) - offset} bytes of tensor data, {size} announced"
        )
    return rest[offset : offset + size], offset + size


def parse_infer(body: bytes, header_length: str | None, input_name: str, binary_default: bool = False) -> OipBody:
    """An ``infer`` body (JSON header, then binary tensors): one input ``input_name``, the outputs asked for."""
    doc, rest = _json_header(body, header_length)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest('"inputs" must be a non-empty list of tensors')
    offset, images = 0, None
    for spec in inputs:
        if not isinstance(spec, dict):
            raise BadRequest("each input must be a JSON object with name, shape, datatype")
        raw, offset = _binary_part(spec, rest, offset)
        array = decode_tensor(spec.get("name"), spec.get("datatype"), spec.get("shape"), spec.get("data"), raw)
        if spec.get("name") != input_name:
            raise BadRequest(f"unknown input {spec.get('name')!r}; this model has one input {input_name!r}")
        images = array
    if offset != len(rest):
        raise BadRequest(f"the body has {len(rest) - offset} bytes of tensor data that no input announced")
    if len(inputs) != 1 or images is None:
        raise BadRequest(f"this model takes exactly one input {input_name!r}, got {len(inputs)}")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f'"id" must be a string, got {type(request_id).__name__}')
    params = _parameters(doc, "the request's")
    default = _flag(params, "binary_data_output", binary_default)
    outputs, binary = _outputs(doc, default)
    return OipBody(request_id, images, outputs, binary, default, request_timeout(params))


def _outputs(doc: dict[str, Any], default: bool) -> tuple[tuple[str, ...] | None, dict[str, bool]]:
    """The output names asked for (None: every output) and each one's binary flag; the names are the data plane's
    check."""
    asked = doc.get("outputs")
    if asked is None:
        return None, {}
    if not isinstance(asked, list):
        raise BadRequest('"outputs" must be a list of {"name": ...} objects')
    chosen, binary = [], {}
    for spec in asked:
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str):
            raise BadRequest(f"unknown output {name!r}; an output is named by a string")
        chosen.append(name)
        binary[name] = _flag(_parameters(spec, f"output {name!r}:"), "binary_data", default)
    return tuple(chosen), binary


def encode_infer(
    model: str,
    version: str,
    request_id: str | None,
    outputs: dict[str, np.ndarray],
    binary: dict[str, bool],
    binary_default: bool = False,
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length (for the HTTP header)."""
    entries, blobs = [], []
    for name, array in outputs.items():
        array = np.ascontiguousarray(array, dtype=np.float32)
        entry: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if binary.get(name, binary_default):
            raw = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if request_id is not None:
        doc["id"] = request_id
    header = orjson.dumps(doc)  # compact, as json.dumps(separators=(",", ":")); floats in the same shortest repr
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
