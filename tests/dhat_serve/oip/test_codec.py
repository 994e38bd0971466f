"""Hostile Open Inference Protocol requests: every one is a 400 with a message, never a crash."""

from __future__ import annotations

import json

import pytest

from dhat_serve.dataplane import select_outputs
from dhat_serve.errors import BadRequest
from dhat_serve.oip.codec import loads, parse_infer

GOOD = {"name": "images", "shape": [1, 1, 2, 2], "datatype": "FP32", "data": [0.1] * 4}


def parse(doc: dict | bytes):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    parsed = parse_infer(body, None, "images")
    select_outputs("all", parsed.outputs)  # the data plane's check of the names asked for
    return parsed


@pytest.mark.parametrize(
    "doc, message",
    [
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        ({"inputs": [GOOD], "parameters": ["x"]}, 'the request\'s "parameters" must be a JSON object, got list'),
        ({"inputs": [{**GOOD, "parameters": "x"}]}, "input 'images': \"parameters\" must be a JSON object, got str"),
        (
            {"inputs": [GOOD], "outputs": [{"name": "logits", "parameters": "x"}]},
            "output 'logits': \"parameters\" must",
        ),
        ({"inputs": [{**GOOD, "shape": [True, 1, 2, 2]}]}, "shape must be a list of non-negative integers"),
        ({"inputs": [{**GOOD, "shape": [1.0, 1, 2, 2]}]}, "shape must be a list of non-negative integers"),
        ({"inputs": [GOOD], "outputs": [{"name": "logits"}, {"name": "logits"}]}, "output 'logits' is asked for twice"),
        ({"inputs": [{**GOOD, "datatype": ["FP32"]}]}, "datatype \\['FP32'\\] is not supported"),
        ({"inputs": [{**GOOD, "parameters": {"binary_data_size": True}}]}, "binary_data_size True"),
        ({"id": {"a": 1}, "inputs": [GOOD]}, '"id" must be a string, got dict'),
        ({"inputs": [GOOD], "parameters": {"binary_data_output": "no"}}, "'binary_data_output' must be true or false"),
        ({"inputs": [GOOD], "outputs": [{"name": ["logits"]}]}, "unknown output \\['logits'\\]"),
        (
            {"inputs": [GOOD], "outputs": [{"name": "logits", "parameters": {"binary_data": 1}}]},
            "'binary_data' must be",
        ),
        ({"inputs": [{**GOOD, "data": {"a": 1}}]}, '"data" is not a \\(nested\\) list'),
        ({"inputs": [{**GOOD, "shape": [10**30, 1, 2, 2]}]}, "needs"),
        ({"inputs": "images"}, '"inputs" must be a non-empty list'),
        ([], "must be a JSON object"),
        ({"inputs": [GOOD], "parameters": {"priority": 2}}, "'priority' 2 is not supported: each mode's queue"),
        ({"inputs": [GOOD], "parameters": {"priority": "high"}}, "'priority' must be a non-negative integer"),
        ({"inputs": [GOOD], "parameters": {"timeout": -5}}, "'timeout' must be a non-negative integer of microseconds"),
        ({"inputs": [GOOD], "parameters": {"timeout": True}}, "'timeout' must be a non-negative integer"),
        ({"inputs": [GOOD], "parameters": {"timeout": 1.5}}, "'timeout' must be a non-negative integer"),
    ],
)
def test_a_hostile_request_is_a_bad_request_with_a_message(doc, message):
    with pytest.raises(BadRequest, match=message):
        parse(doc if not isinstance(doc, list) else json.dumps(doc).encode())


def test_a_well_formed_request_still_parses():
    r = parse({"id": "a", "inputs": [GOOD], "outputs": [{"name": "main_logits", "parameters": {"binary_data": True}}]})
    assert r.id == "a" and r.images.shape == (1, 1, 2, 2) and r.outputs == ("main_logits",)
    assert r.binary == {"main_logits": True} and r.binary_default is False


def test_timeout_and_priority_parameters():
    """Triton's ``timeout`` (microseconds) becomes the request's own deadline; priority 0 and unknown ones pass."""
    assert parse({"inputs": [GOOD]}).timeout_s is None
    assert parse({"inputs": [GOOD], "parameters": {"timeout": 250_000, "priority": 0}}).timeout_s == 0.25
    assert parse({"inputs": [GOOD], "parameters": {"timeout": 0, "sequence_id": 7}}).timeout_s is None


@pytest.mark.parametrize(
    "text",
    [
        b'{"inputs": [{"data": [0.1, 1e-08, 3]}], "id": "\\u00e9"}',
        b"[1, 2.5, true, null]",
        b'{"a": NaN}',
        b'{"a": 1e400}',
        b'{"s": [100000000000000000000000000000, 1]}',
        b'{"a": "\\ud800"}',
    ],
)
def test_json_parses_as_the_standard_library_parses(text):
    """orjson is the fast path; NaN, overflow, lone surrogates and integers beyond 64 bits take the standard
    library's."""
    expected, got = json.loads(text), loads(text)
    assert json.dumps(got) == json.dumps(expected)  # an int read as a float would print as 1e+29


@pytest.mark.parametrize("text", [b"{", b"\xff", b"[" * 5000 + b"]" * 5000, b'{"a":' * 1000 + b"1" + b"}" * 1000])
def test_json_that_does_not_parse_is_a_bad_request(text):
    with pytest.raises(BadRequest, match="not valid JSON"):
        loads(text)
