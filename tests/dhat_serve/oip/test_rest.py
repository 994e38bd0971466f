"""The Open Inference Protocol v2 on the real server, spoken by a stock `tritonclient` and by hand."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from dhat_serve.local_server import serving
from tests.helpers.oip import MODELS, raw_outputs
from tests.helpers.oip import images as _images


@pytest.fixture(scope="module")
def server(tmp_path_factory, symmetric_artifact):
    root = tmp_path_factory.mktemp("oip")
    _, artifact = symmetric_artifact  # one export for the whole session (the server only reads it)
    with serving(artifact, root / "server.log", DHAT_PROVIDER="cpu", DHAT_MAX_BATCH="16") as srv:
        yield srv, artifact


@pytest.fixture(scope="module")
def client(server):
    srv, _ = server
    return triton.InferenceServerClient(url=srv.url.removeprefix("http://"))


def test_liveness_readiness_and_metadata(client, server):
    _, artifact = server
    version = json.loads((artifact / "manifest.json").read_text())["version"]
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data", "statistics", "model_configuration"]
    for model in MODELS:
        decimal = str(int(version, 16))  # Triton's tools need integer versions; both forms name the artifact
        assert client.is_model_ready(model) and client.is_model_ready(model, model_version=version)
        assert client.is_model_ready(model, model_version=decimal)
        meta = client.get_model_metadata(model)
        assert meta["versions"] == [decimal] and meta["parameters"]["artifact_version"] == version
        assert meta["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
        names = [o["name"] for o in meta["outputs"]]
        assert names == (["logits", "main_logits", "second_logits"] if model == "all" else ["logits"])
        assert all(o["shape"] == [-1, 10] and o["datatype"] == "FP32" for o in meta["outputs"])


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("model", MODELS)
def test_tritonclient_infer_equals_the_raw_session(client, server, model, binary):
    _, artifact = server
    x = _images(3, seed=len(model))
    inp = triton.InferInput("images", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    expected = raw_outputs(artifact, model, x)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in expected]
    result = client.infer(model, [inp], outputs=outputs, request_id="r1")
    assert result.get_response()["model_name"] == model and result.get_response()["id"] == "r1"
    for name, want in expected.items():
        np.testing.assert_allclose(result.as_numpy(name), want, atol=1e-5)


def test_versioned_infer_and_unknown_model_or_version(client, server):
    _, artifact = server
    version = json.loads((artifact / "manifest.json").read_text())["version"]
    x = _images(2)
    inp = triton.InferInput("images", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    got = client.infer("main", [inp], model_version=version)
    assert got.get_response()["model_version"] == str(int(version, 16))
    np.testing.assert_allclose(got.as_numpy("logits"), raw_outputs(artifact, "main", x)["logits"], atol=1e-5)
    with pytest.raises(InferenceServerException, match="unknown model 'both'; models: main, second, merged, all"):
        client.infer("both", [inp])
    with pytest.raises(InferenceServerException, match="has no version '7'"):
        client.get_model_metadata("main", model_version="7")


def _infer(url: str, doc: dict, extra: bytes = b"", model: str = "main") -> httpx.Response:
    body = json.dumps(doc).encode()
    headers = {"Inference-Header-Content-Length": str(len(body))} if extra else {}
    return httpx.post(f"{url}/v2/models/{model}/infer", content=body + extra, headers=headers, timeout=30)


def _tensor(shape, datatype="FP32", data=None, **params):
    spec = {"name": "images", "shape": shape, "datatype": datatype}
    if data is not None:
        spec["data"] = data
    if params:
        spec["parameters"] = params
    return spec


@pytest.mark.parametrize(
    "doc, extra, status, message",
    [
        ({"inputs": [_tensor([1, 1, 8, 7], data=[0.5] * 56)]}, b"", 400, "must have shape (N, 1, 8, 8)"),
        ({"inputs": [_tensor([1, 1, 8, 8], "INT32", data=[0] * 64)]}, b"", 400, "must be FP32"),
        ({"inputs": [_tensor([1, 1, 8, 8], "STRING", data=["a"])]}, b"", 400, "datatype 'STRING' is not supported"),
        ({"inputs": [_tensor([1, 1, 8, 8], binary_data_size=100)]}, b"\0" * 100, 400, "needs 256 bytes"),
        ({"inputs": [_tensor([1, 1, 8, 8], binary_data_size=256)]}, b"\0" * 200, 400, "holds 200 bytes"),
        ({"inputs": [_tensor([1, 1, 8, 8], data=[float("nan")] * 64)]}, b"", 400, "NaN or infinity"),
        ({"inputs": [_tensor([1, 1, 8, 8], data=[2.0] * 64)]}, b"", 400, "must be in [0, 1]"),
        (
            {"inputs": [_tensor([17, 1, 8, 8], data=[0.5] * 17 * 64)]},
            b"",
            400,
            "batch of 17 images is over the limit of 16",
        ),
        (
            {"inputs": [{"name": "pixels", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}]},
            b"",
            400,
            "unknown input 'pixels'",
        ),
        ({"inputs": []}, b"", 400, "non-empty list"),
        (
            {"inputs": [_tensor([1, 1, 8, 8], data=[0.5] * 64)], "outputs": [{"name": "probs"}]},
            b"",
            400,
            "unknown output 'probs'",
        ),
    ],
)
def test_malformed_requests_are_4xx_with_a_message(server, doc, extra, status, message):
    srv, _ = server
    r = _infer(srv.url, doc, extra)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_not_json_and_a_bad_header_length(server):
    srv, _ = server
    r = httpx.post(f"{srv.url}/v2/models/main/infer", content=b"{nope", timeout=10)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = httpx.post(f"{srv.url}/v2/models/main/infer", content=b"{}", headers={"Inference-Header-Content-Length": "99"})
    assert r.status_code == 400 and "does not fit" in r.json()["error"]


def test_statistics_count_runs_and_images(server, client):
    srv, _ = server
    x = _images(4)
    inp = triton.InferInput("images", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    client.infer("second", [inp])
    stats = httpx.get(f"{srv.url}/v2/models/second/stats", timeout=10).json()["model_stats"][0]
    assert stats["name"] == "second" and stats["inference_count"] >= 4 and stats["execution_count"] >= 1
    assert stats["images_per_execution"] >= 1 and stats["request_count"] >= 1
    text = httpx.get(f"{srv.url}/metrics", timeout=10).text
    for metric in ("dhat_queue_seconds_bucket", "dhat_compute_seconds_bucket", "dhat_onnx_batch_images_bucket"):
        assert f'{metric}{{le="0.0001",mode="second"}}' in text or f'{metric}{{mode="second"' in text or metric in text


def test_predict_takes_an_npy_body_and_answers_npy(server):
    import io

    srv, artifact = server
    x = _images(3)
    buf = io.BytesIO()
    np.save(buf, x)
    r = httpx.post(
        f"{srv.url}/predict?mode=second", content=buf.getvalue(), headers={"content-type": "application/x-npy"}
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-npy"
    np.testing.assert_allclose(np.load(io.BytesIO(r.content)), raw_outputs(artifact, "second", x)["logits"], atol=1e-5)
    bad = httpx.post(f"{srv.url}/predict", content=b"not npy", headers={"content-type": "application/x-npy"})
    assert bad.status_code == 400 and "not a .npy array" in bad.json()["error"]


def test_client_errors_leave_no_traceback_in_the_log(server):
    srv, _ = server
    httpx.post(f"{srv.url}/predict", json={"inputs": [[[[2.0] * 8] * 8]], "mode": "main"}, timeout=10)
    httpx.post(f"{srv.url}/predict", json={"inputs": [], "mode": "nope"}, timeout=10)
    _infer(srv.url, {"inputs": []})
    assert "Traceback" not in srv.log.read_text()


BAD_TENSORS = [
    (np.full((1, 1, 8, 7), 0.5, np.float32), "inputs must have shape (N, 1, 8, 8); got (1, 1, 8, 7)"),
    (np.full((1, 1, 8, 8), 2.0, np.float32), "inputs must be in [0, 1]"),
    (np.full((1, 1, 8, 8), np.nan, np.float32), "inputs contain NaN or infinity"),
    (np.zeros((0, 1, 8, 8), np.float32), "inputs is an empty batch"),
    (np.full((17, 1, 8, 8), 0.5, np.float32), "batch of 17 images is over the limit of 16"),
]


@pytest.mark.parametrize("x, message", BAD_TENSORS, ids=["shape", "range", "nan", "empty", "over-large batch"])
def test_one_bad_tensor_gets_one_answer_from_json_npy_and_oip(server, x, message):
    import io

    srv, _ = server
    body = '{"inputs": ' + json.dumps(x.tolist()).replace("NaN", "0.5") + "}" if not np.isnan(x).any() else None
    buf = io.BytesIO()
    np.save(buf, x)
    answers = {
        "npy": httpx.post(
            f"{srv.url}/predict?mode=main",
            content=buf.getvalue(),
            headers={"content-type": "application/x-npy"},
            timeout=30,
        ),
        "oip": _infer(
            srv.url,
            {
                "inputs": [
                    {
                        "name": "images",
                        "shape": list(x.shape),
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": x.nbytes},
                    }
                ]
            },
            x.tobytes() or b"\0"[:0],
        ),
    }
    if body is not None:  # JSON has no NaN: that case is covered by test_service's NaN test
        answers["json"] = httpx.post(
            f"{srv.url}/predict", content=body, headers={"content-type": "application/json"}, timeout=30
        )
    for kind, r in answers.items():
        assert r.status_code == 400, (kind, r.text)
        assert message in r.json()["error"], (kind, r.text)
    assert len({r.json()["error"] for r in answers.values()}) == 1, {k: r.text for k, r in answers.items()}


def test_metrics_count_oip_and_npy_requests_with_their_outcome(server):
    import io

    srv, _ = server
    buf = io.BytesIO()
    np.save(buf, _images(2))
    assert (
        httpx.post(
            f"{srv.url}/predict?mode=main",
            content=buf.getvalue(),
            headers={"Content-Type": "application/x-npy"},
            timeout=30,
        ).status_code
        == 200
    )
    assert _infer(srv.url, {"inputs": [_tensor([1, 1, 8, 8], data=[0.5] * 64)]}, model="second").status_code == 200
    assert _infer(srv.url, {"inputs": [_tensor([1, 1, 8, 8], data=[5.0] * 64)]}, model="second").status_code == 400
    text = httpx.get(f"{srv.url}/metrics", timeout=10).text
    assert 'dhat_requests_total{endpoint="predict_npy",mode="main",outcome="ok"}' in text
    assert 'dhat_requests_total{endpoint="oip_http",mode="second",outcome="ok"}' in text
    assert 'dhat_requests_total{endpoint="oip_http",mode="second",outcome="bad_request"}' in text
    assert 'dhat_request_latency_seconds_count{endpoint="oip_http",mode="second"}' in text
    fail = httpx.get(f"{srv.url}/v2/models/second/stats", timeout=10).json()["model_stats"][0]["inference_stats"][
        "fail"
    ]
    assert fail["count"] >= 1 and fail["ns"] > 0


GOOD = {"name": "images", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json.loads: was a 500
        json.dumps({"inputs": [GOOD], "parameters": ["x"]}).encode(),  # was a 500
        json.dumps({"inputs": [{**GOOD, "parameters": "x"}]}).encode(),  # was a 500
        json.dumps({"inputs": [GOOD], "outputs": [{"name": "logits", "parameters": "x"}]}).encode(),  # was a 500
        json.dumps({"inputs": [{**GOOD, "shape": [True, 1, 8, 8]}]}).encode(),  # was a 500
        json.dumps({"inputs": [{**GOOD, "shape": [1.0, 1, 8, 8]}]}).encode(),
        json.dumps({"inputs": [GOOD], "outputs": [{"name": "logits"}, {"name": "logits"}]}).encode(),  # was a 200
        json.dumps({"inputs": [GOOD], "parameters": {"priority": 5}}).encode(),
    ],
)
def test_the_live_server_answers_hostile_oip_bodies_with_400_and_keeps_serving(server, body):
    srv, _ = server
    r = httpx.post(f"{srv.url}/v2/models/main/infer", content=body, timeout=30)
    assert r.status_code == 400 and isinstance(r.json()["error"], str) and r.json()["error"]
    good = httpx.post(f"{srv.url}/v2/models/main/infer", json={"inputs": [GOOD]}, timeout=30)
    assert good.status_code == 200 and good.json()["outputs"][0]["shape"] == [1, 10]
