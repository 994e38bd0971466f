"""The Open Inference Protocol over gRPC on the real server, spoken by a stock `tritonclient.grpc`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from google.protobuf import json_format
from tritonclient.utils import InferenceServerException

from dhat_serve.auth import ApiKeys
from dhat_serve.local_server import Server, serving
from tests.helpers.oip import MODELS, raw_outputs
from tests.helpers.oip import images as _images


@pytest.fixture(scope="module")
def server(tmp_path_factory, symmetric_artifact):
    _, artifact = symmetric_artifact
    with serving(
        artifact,
        tmp_path_factory.mktemp("grpc") / "server.log",
        grpc=True,
        DHAT_PROVIDER="cpu",
        DHAT_MAX_BATCH="16",
        DHAT_MAX_REQUEST_BYTES="200000",
    ) as srv:
        yield srv, artifact


@pytest.fixture(scope="module")
def client(server):
    return tgrpc.InferenceServerClient(url=server[0].grpc_url)


def _grpc_infer(client, model: str, x: np.ndarray, **kwargs):
    inp = tgrpc.InferInput("images", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp], **kwargs)


def _error(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


@pytest.mark.parametrize("model", MODELS)
def test_grpc_and_http_clients_get_the_raw_sessions_logits(server, client, model):
    srv, artifact = server
    x = _images(3, seed=len(model))
    raw = raw_outputs(artifact, model, x)
    via_grpc = _grpc_infer(client, model, x)
    http = thttp.InferenceServerClient(url=srv.url.removeprefix("http://"))
    inp = thttp.InferInput("images", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    via_http = http.infer(model, [inp])
    for name, expected in raw.items():
        got = via_grpc.as_numpy(name)
        assert got.shape == expected.shape == (3, 10)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(got, via_http.as_numpy(name))  # one path: identical, not just close


def test_metadata_config_and_statistics_in_tritons_schema(server, client):
    srv, artifact = server
    version = json.loads((artifact / "manifest.json").read_text())["version"]
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("all", version)
    assert "model_configuration" in client.get_server_metadata().extensions
    meta = client.get_model_metadata("all")
    assert [o.name for o in meta.outputs] == ["logits", "main_logits", "second_logits"]
    assert list(meta.inputs[0].shape) == [-1, 1, 8, 8] and meta.versions == [str(int(version, 16))]
    config = client.get_model_config("merged").config
    assert config.max_batch_size == 16 and list(config.input[0].dims) == [1, 8, 8]
    assert config.platform == "onnxruntime_onnx" and config.dynamic_batching.default_queue_policy.max_queue_size == 256
    over_http = httpx.get(f"{srv.url}/v2/models/merged/config", timeout=10).json()
    assert json_format.ParseDict(over_http, type(config)()) == config  # the HTTP JSON is Triton's schema too
    _grpc_infer(client, "second", _images(4))
    stats = client.get_inference_statistics("second").model_stats[0]
    assert stats.inference_count >= 4 and stats.inference_stats.success.count >= 1
    assert stats.inference_stats.success.ns > 0 and stats.inference_stats.queue.count >= 1
    assert sum(b.compute_infer.count for b in stats.batch_stats) == stats.execution_count
    every = httpx.get(f"{srv.url}/v2/models/stats", timeout=10).json()["model_stats"]
    assert [s["name"] for s in every] == list(MODELS) and "inference_stats" in every[1]


@pytest.mark.parametrize(
    "name, call, code, message",
    [
        ("unknown model", lambda c: _grpc_infer(c, "nope", _images(1)), "NOT_FOUND", "unknown model 'nope'"),
        ("bad version", lambda c: _grpc_infer(c, "main", _images(1), model_version="9"), "NOT_FOUND", "no version '9'"),
        (
            "wrong shape",
            lambda c: _grpc_infer(c, "main", np.zeros((1, 3, 8, 8), np.float32)),
            "INVALID_ARGUMENT",
            "shape",
        ),
        (
            "out of range",
            lambda c: _grpc_infer(c, "main", np.full((1, 1, 8, 8), 2, np.float32)),
            "INVALID_ARGUMENT",
            "[0, 1]",
        ),
        ("over max batch", lambda c: _grpc_infer(c, "main", _images(17)), "INVALID_ARGUMENT", "16"),
        ("priority", lambda c: _grpc_infer(c, "main", _images(1), priority=3), "INVALID_ARGUMENT", "priority"),
        ("too large", lambda c: _grpc_infer(c, "main", _images(1000)), "RESOURCE_EXHAUSTED", ""),
        ("own timeout", lambda c: _grpc_infer(c, "main", _images(1), timeout=1), "DEADLINE_EXCEEDED", "deadline"),
    ],
)
def test_refusals_carry_their_grpc_status(server, client, name, call, code, message):
    err = _error(lambda: call(client))
    assert err.status() == f"StatusCode.{code}", (name, err)
    assert message in err.message()
    np.testing.assert_allclose(_grpc_infer(client, "main", _images(1)).as_numpy("logits").shape, (1, 10))


def test_unavailable_while_the_engine_loads():
    """In process: a worker whose engine is not loaded yet answers UNAVAILABLE (HTTP's 503 starting)."""
    import grpc
    from tritonclient.grpc import service_pb2 as pb

    from dhat_serve.oip.grpc_service import InferenceServicer
    from dhat_serve.service import current_plane

    class Context:
        def time_remaining(self):
            return None

        async def abort(self, code, message):
            self.code, self.message = code, message
            raise RuntimeError("aborted")

    ctx = Context()
    with pytest.raises(RuntimeError, match="aborted"):
        servicer = InferenceServicer(current_plane, ApiKeys(()))
        asyncio.run(servicer.ModelInfer(pb.ModelInferRequest(model_name="main"), ctx))
    assert ctx.code == grpc.StatusCode.UNAVAILABLE and "loading" in ctx.message


def test_metrics_count_every_protocol_and_head_disagreement(server, client):
    srv, _ = server
    _grpc_infer(client, "merged", _images(5, seed=7))
    httpx.post(f"{srv.url}/predict", json={"inputs": _images(2).tolist(), "mode": "merged"}, timeout=10)
    text = httpx.get(f"{srv.url}/metrics", timeout=10).text
    for needle in (
        'endpoint="oip_grpc"',
        'endpoint="predict"',
        "dhat_heads_disagree_total",
        "dhat_images_total",
        "dhat_queue_depth",
        "dhat_requests_in_flight",
    ):
        assert needle in text, needle
    stats = client.get_inference_statistics("merged", as_json=True)["model_stats"][0]
    http_stats = httpx.get(f"{srv.url}/v2/models/merged/stats", timeout=10).json()["model_stats"][0]
    assert http_stats["heads_checked"] >= 7 and 0 <= http_stats["heads_disagree"] <= http_stats["heads_checked"]
    assert int(stats["inference_count"]) >= 7


def _answered(call) -> bool:
    try:
        return call()
    except (InferenceServerException, httpx.HTTPError):
        return False


CLOSED = "SIGTERM: no new connections"  # what http/drain.py logs once it has closed the listening sockets
HANDLED = "SIGTERM: still accepting"  # ... once its handler has marked the process draining (readiness 503)


def _wait_for_log(srv, line: str) -> None:
    """Wait for the server to log ``line`` (bounded at 60 s so a hang fails, naming the line, instead of hanging)."""
    deadline = time.monotonic() + 60
    while line not in srv.log.read_text():
        assert time.monotonic() < deadline, f"the server never logged {line!r}"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigterm_turns_readiness_503_at_once_serves_through_the_delay_then_drains(tmp_path, symmetric_artifact):
    """A rolling update: readiness 503 within 1 s of SIGTERM (HTTP and gRPC), liveness 200, requests sent
    during DHAT_DRAIN_DELAY_S answered, every accepted gRPC request answered, then no new ones, exit 0."""
    _, artifact = symmetric_artifact
    srv = Server(
        artifact,
        tmp_path / "server.log",
        grpc=True,
        DHAT_PROVIDER="cpu",
        DHAT_DRAIN_DELAY_S="6",
        DHAT_INTRA_OP_THREADS="1",
    )
    try:
        srv.wait_ready()
        client = tgrpc.InferenceServerClient(url=srv.grpc_url)
        x, results = _images(64), []

        def call() -> None:
            results.append(_answered(lambda: _grpc_infer(client, "all", x).as_numpy("logits").shape == (64, 10)))

        threads = [threading.Thread(target=call) for _ in range(40)]
        for t in threads:
            t.start()
        os.kill(srv.proc.pid, signal.SIGTERM)
        _wait_for_log(srv, HANDLED)  # the handler has run: readiness turned 503 before it logged
        assert httpx.get(f"{srv.url}/v2/health/ready", timeout=5).status_code == 503
        assert httpx.get(f"{srv.url}/readyz", timeout=5).status_code == 503
        assert not client.is_server_ready() and not client.is_model_ready("main")
        assert httpx.get(f"{srv.url}/v2/health/live", timeout=5).status_code == 200
        # routed here before the endpoint was removed: still served during the delay, on both protocols
        fresh = tgrpc.InferenceServerClient(url=srv.grpc_url)
        assert _grpc_infer(fresh, "main", _images(1)).as_numpy("logits").shape == (1, 10)
        r = httpx.post(f"{srv.url}/predict", json={"inputs": _images(1).tolist(), "mode": "main"}, timeout=10)
        assert r.status_code == 200 and CLOSED not in srv.log.read_text()  # answered before the sockets closed
        for t in threads:
            t.join(60)
        assert results == [True] * 40, results
        _wait_for_log(srv, CLOSED)  # no clock guesses: the drain's own line that the listening sockets are closed
        late = tgrpc.InferenceServerClient(url=srv.grpc_url)
        assert not _answered(lambda: _grpc_infer(late, "main", _images(1), client_timeout=2) is not None)
        assert srv.proc.wait(60) == 0
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: setattr(r.inputs[0], "name", "x"), "exactly one input 'images', got ['x']"),
        (lambda r: setattr(r.inputs[0], "datatype", "INT8"), "must be FP32, got 'INT8'"),
        (lambda r: setattr(r.inputs[0], "datatype", "NOPE"), "datatype 'NOPE' is not supported"),
        (lambda r: r.inputs[0].shape.__setitem__(0, -2), "non-negative"),
        (lambda r: r.inputs[0].shape.__setitem__(0, 10**15), "needs"),
        (lambda r: r.raw_input_contents.append(b"\0" * 8), "2 entries for 1 input"),
        (lambda r: r.raw_input_contents.__setitem__(0, b"\0" * 7), "holds 7"),
        (lambda r: r.inputs.add(name="images", datatype="FP32", shape=[1]), "exactly one input"),
    ],
)
def test_hostile_grpc_tensors_are_invalid_argument_with_a_message(mutate, message):
    """In process: every malformed ModelInferRequest tensor is a BadRequest (INVALID_ARGUMENT), never a crash."""
    from tritonclient.grpc import service_pb2 as pb

    from dhat_serve.errors import BadRequest
    from dhat_serve.oip.grpc_service import request_tensor

    request = pb.ModelInferRequest(model_name="main")
    request.inputs.add(name="images", datatype="FP32", shape=[1, 1, 2, 2])
    request.raw_input_contents.append(np.full((1, 1, 2, 2), 0.5, np.float32).tobytes())
    assert request_tensor(request).shape == (1, 1, 2, 2)
    mutate(request)
    with pytest.raises(BadRequest) as info:
        request_tensor(request)
    assert message in str(info.value)
