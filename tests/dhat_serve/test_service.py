"""The real server on a free local port, talked to over HTTP."""

from __future__ import annotations

import io
import json
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from dhat_serve.local_server import serving
from tests.helpers.oip import images as _images

LIMITS = {
    "DHAT_MAX_BATCH": "32",
    "DHAT_MAX_REQUEST_BYTES": "300000",
    "DHAT_MAX_IMAGE_PIXELS": "20000",
    "DHAT_PROVIDER": "cpu",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, symmetric_artifact):
    root = tmp_path_factory.mktemp("serve")
    _, artifact = symmetric_artifact  # one export for the whole session (the server only reads it)
    with serving(artifact, root / "server.log", **LIMITS) as srv:
        yield srv, artifact


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _direct(artifact, mode: str, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(artifact / f"{mode}.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"images": x}
    )[0]


def _error(resp: httpx.Response) -> str:
    body = resp.json()
    return json.dumps(body)


def test_predict_each_mode_equals_onnx_runtime_run_directly(server):
    srv, artifact = server
    x = _images(5)
    for mode in ("main", "second", "merged"):
        r = httpx.post(f"{srv.url}/predict", json={"inputs": x.tolist(), "mode": mode}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        expected = _direct(artifact, mode, x)
        np.testing.assert_allclose(np.array(body["logits"]), expected, atol=1e-5)
        assert body["labels"] == expected.argmax(1).tolist() and body["mode"] == mode
        np.testing.assert_allclose(np.array(body["probabilities"]).sum(1), 1.0, atol=1e-6)


def test_all_mode_agrees_with_the_three_single_modes(server):
    srv, _ = server
    x = _images(4, seed=1)
    both = httpx.post(f"{srv.url}/predict", json={"inputs": x.tolist(), "mode": "all"}, timeout=30).json()
    for mode in ("main", "second", "merged"):
        single = httpx.post(f"{srv.url}/predict", json={"inputs": x.tolist(), "mode": mode}, timeout=30).json()
        np.testing.assert_allclose(both["modes"][mode]["logits"], single["logits"], atol=1e-5)
    assert both["heads_agree"] == [
        a == b for a, b in zip(both["modes"]["main"]["labels"], both["modes"]["second"]["labels"], strict=True)
    ]


def test_classify_each_mode_and_all(server):
    srv, artifact = server
    pixels = (np.random.default_rng(2).random((8, 8)) * 255).astype(np.uint8)
    x = (pixels.astype(np.float32) / 255.0)[None, None]
    answers = {}
    for mode in ("main", "second", "merged", "all"):
        r = httpx.post(
            f"{srv.url}/classify",
            files={"image": ("x.png", _png(pixels), "image/png")},
            data={"mode": mode, "top_k": "3"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        answers[mode] = r.json()
    for mode in ("main", "second", "merged"):
        expected = int(_direct(artifact, mode, x).argmax())
        assert answers[mode]["label"] == expected == answers["all"]["modes"][mode]["label"]
        assert len(answers[mode]["top_k"]) == 3 and answers[mode]["class_name"] == str(expected)
    assert answers["all"]["heads_agree"] == (answers["main"]["label"] == answers["second"]["label"])
    assert answers["merged"]["artifact"]["version"]


def test_info_lists_modes_classes_and_hashes(server):
    srv, artifact = server
    info = httpx.get(f"{srv.url}/info", timeout=10).json()
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert info["modes"] == ["main", "second", "merged", "all"] and info["input_shape"] == [None, 1, 8, 8]
    assert info["hashes"]["merged"] == manifest["modes"]["merged"]["sha256"]
    assert len(info["class_names"]) == 10
    assert str(artifact) not in json.dumps(info) and "artifact_dir" not in info  # no server paths
    assert info["robustness"]["evaluated"] is False and "not evaluated" in info["robustness"]["note"]  # no card.json
    assert info["robustness"]["modes"]["merged"]["evaluated"] is False
    meta = httpx.get(f"{srv.url}/v2/models/main", timeout=10).json()
    assert meta["parameters"]["robustness"]["evaluated"] is False


BAD_PREDICT = [
    ({"inputs": [[[0.5] * 8] * 8]}, r"inputs must have shape \(N, 1, 8, 8\); got \(1, 8, 8\)"),
    ({"inputs": [[[["a"] * 8] * 8]]}, r"inputs must be numbers"),
    ({"inputs": [[[[2.0] * 8] * 8]]}, r"inputs must be in \[0, 1\]"),
    ({"inputs": []}, r"empty batch"),
    ({"inputs": [[[[0.5] * 8] * 8]] * 33}, r"batch of 33 images is over the limit of 32"),
    ({"inputs": [[[[0.5] * 8] * 8], [[[0.5] * 7] * 8]]}, r"ragged"),
]


@pytest.mark.parametrize("payload, message", BAD_PREDICT)
def test_bad_tensors_get_a_400_with_a_message(server, payload, message):
    srv, _ = server
    r = httpx.post(f"{srv.url}/predict", json=payload, timeout=30)
    assert r.status_code == 400, r.text
    assert re.search(message, _error(r)), r.text


def test_nan_and_infinity_are_refused(server):
    srv, _ = server
    for token in ("NaN", "Infinity"):
        body = '{"inputs": [[[' + ",".join(["[" + ",".join([token] + ["0.5"] * 7) + "]"] * 8) + "]]]}"
        r = httpx.post(f"{srv.url}/predict", content=body, headers={"content-type": "application/json"}, timeout=30)
        assert 400 <= r.status_code < 500, r.text
        assert "NaN or infinity" in r.text or "json" in r.text.lower()


def test_bad_uploads_get_a_400_with_a_message(server):
    srv, _ = server
    good = _png((np.random.default_rng(3).random((8, 8)) * 255).astype(np.uint8))
    big = _png(np.zeros((200, 200), dtype=np.uint8))  # 40,000 pixels > the 20,000 limit, tiny on the wire
    cases = [
        ({"image": ("x.txt", b"hello, not an image", "text/plain")}, {}, "not an image"),
        ({"image": ("x.png", good[: len(good) // 2], "image/png")}, {}, "truncated or corrupt"),
        ({"image": ("x.png", big, "image/png")}, {}, "200x200 = 40000 pixels, over the limit of 20000"),
        ({"image": ("x.png", good, "image/png")}, {"top_k": "11"}, "top_k must be between 1 and 10"),
        ({"image": ("x.png", b"", "image/png")}, {}, "empty"),
    ]
    for files, data, message in cases:
        r = httpx.post(f"{srv.url}/classify", files=files, data=data, timeout=30)
        assert r.status_code == 400, (message, r.status_code, r.text)
        assert message in r.text, r.text


def test_request_body_over_the_limit_gets_413(server):
    srv, _ = server
    r = httpx.post(f"{srv.url}/classify", files={"image": ("x.png", b"\0" * 400_000, "image/png")}, timeout=30)
    assert r.status_code == 413 and "over the limit of 300000 bytes" in r.text

    def chunks():  # no Content-Length: the guard counts the body as it arrives
        for _ in range(40):
            yield b"\0" * 10_000

    r = httpx.post(f"{srv.url}/predict", content=chunks(), headers={"content-type": "application/x-npy"}, timeout=30)
    assert r.status_code == 413 and "over the limit of 300000 bytes" in r.text
    buf = io.BytesIO()
    np.save(buf, _images(2))  # a chunked body within the limit is replayed whole to the route
    r = httpx.post(
        f"{srv.url}/predict?mode=main", content=iter([buf.getvalue()]), headers={"content-type": "application/x-npy"}
    )
    assert r.status_code == 200 and np.load(io.BytesIO(r.content)).shape == (2, 10)


@pytest.mark.parametrize(
    "content_type, body, message",
    [
        ("multipart/form-data", b"--x\r\n", "without a boundary"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nno end", "malformed"),
        ("application/json", b'{"image": 1}', "multipart file field 'image'"),
    ],
)
def test_a_classify_body_that_is_not_a_good_form_gets_a_400_with_a_message(server, content_type, body, message):
    srv, _ = server
    r = httpx.post(f"{srv.url}/classify", content=body, headers={"content-type": content_type}, timeout=30)
    assert r.status_code == 400 and message in r.json()["error"], r.text


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=_images(1))
    return buf.getvalue()


HUGE_HEADER = _npy(np.zeros((2, 1, 8, 8), np.float32)).replace(b"(2, 1, 8, 8)", b"(2, 9999999)")  # 80 MB promised


@pytest.mark.parametrize(
    "body, message",
    [
        (_npz(), "magic bytes"),  # a zip: np.load would hand back an NpzFile
        (b"PK\x03\x04junk", "magic bytes"),
        (_npy(np.array([{"a": 1}], dtype=object)), "Python objects"),
        (_npy(np.zeros((33, 1, 8, 8), np.float32)), "batch of 33 images is over the limit of 32"),
        (_npy(np.zeros((2, 1, 8, 8), np.float32))[:-16], "does not match"),  # header promises more than the body
        (HUGE_HEADER, "does not match"),  # numpy would allocate the promised 80 MB before reading
        (b"\x93NUMPY\x01\x00\x05\x00junk", "not a .npy array"),
    ],
)
def test_a_hostile_npy_body_gets_a_400_never_a_500(server, body, message):
    srv, _ = server
    r = httpx.post(f"{srv.url}/predict?mode=main", content=body, headers={"content-type": "application/x-npy"})
    assert r.status_code == 400 and message in r.json()["error"], r.text


def test_an_unknown_mode_is_a_404_whatever_the_body_and_an_empty_one_too(server):
    srv, _ = server
    junk = {"content": b"not a tensor", "timeout": 30}
    r = httpx.post(f"{srv.url}/predict?mode=best", headers={"content-type": "application/x-npy"}, **junk)
    assert r.status_code == 404 and "unknown model 'best'" in r.text
    assert httpx.post(f"{srv.url}/v2/models/best/infer", **junk).status_code == 404
    r = httpx.post(f"{srv.url}/classify", files={"image": ("x.png", b"junk", "image/png")}, data={"mode": "best"})
    assert r.status_code == 404 and "unknown model 'best'" in r.text
    r = httpx.post(f"{srv.url}/predict", json={"inputs": "junk", "mode": ""}, timeout=30)
    assert r.status_code == 404 and "unknown model ''" in r.text
    good = _png((np.random.default_rng(5).random((8, 8)) * 255).astype(np.uint8))
    for top_k in ("", "٣", "2.5"):
        r = httpx.post(f"{srv.url}/classify", files={"image": ("x.png", good, "image/png")}, data={"top_k": top_k})
        assert r.status_code == 400 and "top_k must be an integer" in r.text, (top_k, r.text)
    text = httpx.get(f"{srv.url}/metrics", timeout=10).text
    assert 'dhat_requests_total{endpoint="classify",mode="merged",outcome="bad_request"}' in text  # the default


def test_a_predict_body_that_is_not_the_json_object_gets_a_400_with_a_message(server):
    srv, _ = server
    for body in (b"[1, 2]", b"{}", b"not json", b'{"inputs": [], "mode": 3}'):
        r = httpx.post(f"{srv.url}/predict", content=body, headers={"content-type": "application/json"}, timeout=30)
        assert r.status_code == 400 and r.json()["error"], (body, r.text)
    r = httpx.post(f"{srv.url}/predict", json={"inputs": _images(1).tolist(), "mode": 3}, timeout=30)
    assert "mode must be text, got int" in r.json()["error"]


def test_service_keeps_serving_after_bad_requests(server):
    srv, _ = server
    for _ in range(3):
        httpx.post(f"{srv.url}/predict", json={"inputs": "nope"}, timeout=30)
        httpx.post(f"{srv.url}/classify", files={"image": ("x", b"junk", "image/png")}, timeout=30)
    assert httpx.get(f"{srv.url}/readyz", timeout=10).status_code == 200
    r = httpx.post(f"{srv.url}/predict", json={"inputs": _images(1).tolist()}, timeout=30)
    assert r.status_code == 200 and r.json()["mode"] == "merged"


def _batch_histogram(text: str, mode: str) -> tuple[float, float]:
    def value(metric: str) -> float:
        m = re.search(rf'^{metric}\{{[^}}]*mode="{mode}"[^}}]*\}} ([0-9.e+]+)$', text, re.M)
        return float(m.group(1)) if m else 0.0

    return value("dhat_onnx_batch_images_sum"), value("dhat_onnx_batch_images_count")


def test_64_concurrent_requests_succeed_and_share_batches(server):
    srv, artifact = server
    before = _batch_histogram(httpx.get(f"{srv.url}/metrics", timeout=10).text, "second")
    x = _images(64, seed=4)

    def one(i: int) -> tuple[int, list]:
        r = httpx.post(f"{srv.url}/predict", json={"inputs": x[i : i + 1].tolist(), "mode": "second"}, timeout=60)
        return r.status_code, r.json().get("logits")

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(one, range(64)))
    assert [code for code, _ in results] == [200] * 64
    np.testing.assert_allclose(np.array([lg[0] for _, lg in results]), _direct(artifact, "second", x), atol=1e-5)
    after = _batch_histogram(httpx.get(f"{srv.url}/metrics", timeout=10).text, "second")
    images, calls = after[0] - before[0], after[1] - before[1]
    assert images == 64
    assert calls < 64, f"64 concurrent requests took {calls} ONNX Runtime calls: no batching happened"
    text = httpx.get(f"{srv.url}/metrics", timeout=10).text
    assert 'dhat_requests_total{endpoint="predict",mode="second",outcome="ok"}' in text
    assert "dhat_request_latency_seconds_bucket" in text


def test_the_log_says_which_provider_each_session_got(server):
    srv, _ = server
    log = srv.log.read_text()
    for mode in ("main", "second", "merged"):
        assert f"mode {mode}: {mode}.onnx runs on CPUExecutionProvider" in log


def test_no_access_log_line_and_no_tracing_by_default(server):
    """BentoML's access log and OpenTelemetry spans are off unless DHAT_ACCESS_LOG / DHAT_TRACING ask (issue 30)."""
    from dhat_serve import service

    srv, _ = server
    assert httpx.post(f"{srv.url}/predict", json={"inputs": np.zeros((1, 1, 8, 8)).tolist()}).status_code == 200
    assert "path=/predict" not in srv.log.read_text()  # BentoML's access line: "(scheme=http,method=POST,path=...)"
    assert service.DHAT.config["logging"] == {"access": {"enabled": False}}
    assert service.DHAT.config["tracing"] == {"excluded_urls": service.NO_TRACING}
