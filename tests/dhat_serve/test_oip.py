"""Hostile Open Inference Protocol requests: every one is a 400 with a message, never a crash."""

from __future__ import annotations

import json

import pytest

from dhat_serve.errors import BadRequest
from dhat_serve.oip import parse_infer

GOOD = {"name": "images", "shape": [1, 1, 2, 2], "datatype": "FP32", "data": [0.1] * 4}


def parse(doc: dict | bytes):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_infer(body, None, "images", (1, 2, 2), ("logits", "main_logits"), 64)


@pytest.mark.parametrize("doc, message", [
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ({"inputs": [GOOD], "parameters": ["x"]}, "the request's \"parameters\" must be a JSON object, got list"),
    ({"inputs": [{**GOOD, "parameters": "x"}]}, "input 'images': \"parameters\" must be a JSON object, got str"),
    ({"inputs": [GOOD], "outputs": [{"name": "logits", "parameters": "x"}]}, "output 'logits': \"parameters\" must"),
    ({"inputs": [{**GOOD, "shape": [True, 1, 2, 2]}]}, "shape must be a list of non-negative integers"),
    ({"inputs": [{**GOOD, "shape": [1.0, 1, 2, 2]}]}, "shape must be a list of non-negative integers"),
    ({"inputs": [GOOD], "outputs": [{"name": "logits"}, {"name": "logits"}]}, "output 'logits' is asked for twice"),
    ({"inputs": [{**GOOD, "datatype": ["FP32"]}]}, "datatype \\['FP32'\\] is not supported"),
    ({"inputs": [{**GOOD, "parameters": {"binary_data_size": True}}]}, "binary_data_size True"),
    ({"id": {"a": 1}, "inputs": [GOOD]}, "\"id\" must be a string, got dict"),
    ({"inputs": [GOOD], "parameters": {"binary_data_output": "no"}}, "'binary_data_output' must be true or false"),
    ({"inputs": [GOOD], "outputs": [{"name": ["logits"]}]}, "unknown output \\['logits'\\]"),
    ({"inputs": [GOOD], "outputs": [{"name": "logits", "parameters": {"binary_data": 1}}]}, "'binary_data' must be"),
    ({"inputs": [{**GOOD, "shape": [1, 1, 2, 2, 1]}]}, r"inputs must have shape \(N, 1, 2, 2\); got \(1, 1, 2, 2, 1\)"),
    ({"inputs": [{**GOOD, "data": {"a": 1}}]}, "\"data\" is not a \\(nested\\) list"),
    ({"inputs": [{**GOOD, "shape": [10 ** 30, 1, 2, 2]}]}, "needs"),
    ({"inputs": "images"}, "\"inputs\" must be a non-empty list"),
    ([], "must be a JSON object"),
])
def test_a_hostile_request_is_a_bad_request_with_a_message(doc, message):
    with pytest.raises(BadRequest, match=message):
        parse(doc if not isinstance(doc, list) else json.dumps(doc).encode())


def test_a_well_formed_request_still_parses():
    r = parse({"id": "a", "inputs": [GOOD], "outputs": [{"name": "main_logits", "parameters": {"binary_data": True}}]})
    assert r.id == "a" and r.images.shape == (1, 1, 2, 2) and r.outputs == ("main_logits",)
    assert r.binary == {"main_logits": True}
