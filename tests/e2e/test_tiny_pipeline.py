"""The whole pipeline on a tiny recipe, as a user runs it, in the fast tier: train (three stages) -> export ->
eval -> serve, every protocol queried against the graph itself (the real digits recipe: test_digits_pipeline)."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from PIL import Image

from dhat_serve.local_server import serving
from tests.helpers.cli import dhat
from tests.helpers.oip import raw_outputs
from tests.training.conftest import TINY

pytestmark = pytest.mark.e2e
UNKNOWN = "unknown model 'best'; models: main, second, merged, all (the request modes)"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    run, artifact, report = root / "run", root / "artifact", root / "report"
    dhat("train", "digits", "--out", str(run), *TINY)
    dhat("export", str(run), "--out", str(artifact))
    dhat(
        "eval",
        str(artifact),
        "--run",
        str(run),
        "--attacks",
        "clean,pgd20",
        "--n",
        "16",
        "--batch-size",
        "16",
        "--no-curve",
        "--out",
        str(report),
    )
    with serving(artifact, root / "server.log", grpc=True, DHAT_PROVIDER="cpu") as srv:
        yield srv, run, artifact, json.loads((report / "report.json").read_text())


def _x(n: int) -> np.ndarray:
    return np.random.default_rng(5).random((n, 1, 8, 8), dtype=np.float32)


def test_three_stages_export_and_an_evaluation_with_intervals(served):
    _, run, artifact, report = served
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["stage"] for r in rows}) == [1, 2, 3]
    assert {p.name for p in artifact.glob("*.onnx")} == {"main.onnx", "second.onnx", "merged.onnx"}
    for row in report["results"].values():
        clean = row["attacks"]["clean"]
        assert clean["disagreements"] == 0 and row["attacks"]["pgd20"]["graph"] <= clean["graph"]


def test_every_protocol_answers_like_the_graph(served):
    srv, _, artifact, _ = served
    x = _x(3)
    want = raw_outputs(artifact, "merged", x)["logits"]
    r = httpx.post(f"{srv.url}/predict", json={"inputs": x.tolist(), "mode": "merged"}, timeout=30)
    np.testing.assert_allclose(r.json()["logits"], want, rtol=1e-5, atol=1e-5)
    buf = io.BytesIO()
    np.save(buf, x)
    r = httpx.post(
        f"{srv.url}/predict?mode=merged",
        content=buf.getvalue(),
        headers={"content-type": "application/x-npy"},
        timeout=30,
    )
    np.testing.assert_allclose(np.load(io.BytesIO(r.content)), want, rtol=1e-5, atol=1e-5)
    doc = {"inputs": [{"name": "images", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    r = httpx.post(f"{srv.url}/v2/models/merged/infer", json=doc, timeout=30)
    np.testing.assert_allclose(np.reshape(r.json()["outputs"][0]["data"], want.shape), want, rtol=1e-5, atol=1e-5)
    client = tgrpc.InferenceServerClient(url=srv.grpc_url)
    tensor = tgrpc.InferInput("images", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    np.testing.assert_allclose(client.infer("merged", [tensor]).as_numpy("logits"), want, rtol=1e-5, atol=1e-5)
    pixels = (x[0, 0] * 255).round().astype(np.uint8)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    r = httpx.post(
        f"{srv.url}/classify", files={"image": ("x.png", png.getvalue(), "image/png")}, data={"mode": "all"}, timeout=30
    )
    graph = raw_outputs(artifact, "all", (pixels.astype(np.float32) / 255)[None, None])
    assert r.json()["modes"]["merged"]["label"] == int(graph["logits"].argmax())
    assert r.json()["heads_agree"] == bool(graph["main_logits"].argmax() == graph["second_logits"].argmax())


def test_an_unknown_mode_is_one_refusal_with_one_message_on_all_five_paths(served):
    srv, _, _, _ = served
    x = _x(1)
    buf = io.BytesIO()
    np.save(buf, x)
    png = io.BytesIO()
    Image.fromarray((x[0, 0] * 255).astype(np.uint8)).save(png, format="PNG")
    doc = {"inputs": [{"name": "images", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x.ravel().tolist()}]}
    answers = [
        httpx.post(
            f"{srv.url}/classify",
            files={"image": ("x.png", png.getvalue(), "image/png")},
            data={"mode": "best"},
            timeout=30,
        ),
        httpx.post(f"{srv.url}/predict", json={"inputs": x.tolist(), "mode": "best"}, timeout=30),
        httpx.post(
            f"{srv.url}/predict?mode=best",
            content=buf.getvalue(),
            headers={"content-type": "application/x-npy"},
            timeout=30,
        ),
        httpx.post(f"{srv.url}/v2/models/best/infer", json=doc, timeout=30),
    ]
    assert [(r.status_code, r.json()["error"]) for r in answers] == [(404, UNKNOWN)] * 4
    tensor = tgrpc.InferInput("images", [1, 1, 8, 8], "FP32")
    tensor.set_data_from_numpy(x)
    with pytest.raises(tgrpc.InferenceServerException) as err:
        tgrpc.InferenceServerClient(url=srv.grpc_url).infer("best", [tensor])
    assert err.value.status() == "StatusCode.NOT_FOUND" and err.value.message() == UNKNOWN
    metrics = httpx.get(f"{srv.url}/metrics", timeout=10).text
    for endpoint in ("classify", "predict", "predict_npy", "oip_http", "oip_grpc"):
        assert f'dhat_requests_total{{endpoint="{endpoint}",mode="any",outcome="not_found"}} 1.0' in metrics, endpoint
