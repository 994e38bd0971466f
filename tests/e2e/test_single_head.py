"""A run whose second head and merger were never trained (stages 2 and 3 of 0 epochs, as the single-head
baselines) is a single-head model end to end: one graph, one served mode, no head-disagreement section.

In the slow tier: the fast tier's one end-to-end pass is tests/e2e/test_tiny_pipeline.py; the unit tests of the
same rules (manifest, export, data plane) run in both."""

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

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NOT_HERE = (
    "model '{}' is not in this artifact: a single-head model (its second head and merger were never "
    "trained); models: main"
)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    run, artifact, report = root / "run", root / "artifact", root / "report"
    dhat("train", "digits", "--out", str(run), *TINY, "stage2.epochs=0", "stage3.epochs=0")
    dhat("export", str(run), "--out", str(artifact))
    dhat(
        "eval",
        str(artifact),
        "--run",
        str(run),
        "--attacks",
        "clean,pgd5",
        "--n",
        "8",
        "--batch-size",
        "8",
        "--no-curve",
        "--out",
        str(report),
    )
    with serving(artifact, root / "server.log", grpc=True, DHAT_PROVIDER="cpu") as srv:
        yield srv, artifact, report


def _x(n: int) -> np.ndarray:
    return np.random.default_rng(2).random((n, 1, 8, 8), dtype=np.float32)


def test_it_exports_main_alone_and_its_report_has_no_disagreement_section(single):
    _, artifact, report = single
    assert {p.name for p in artifact.glob("*.onnx")} == {"main.onnx"}
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert list(manifest["modes"]) == ["main"]
    doc = json.loads((report / "report.json").read_text())
    assert list(doc["results"]) == ["main"] and doc["head_disagreement"] is None and doc["transfer"] == {}
    assert "Head disagreement" not in (report / "report.md").read_text()
    assert "head disagreement" not in (report / "report.md").read_text().split("Shifted traffic")[-1]
    out = dhat("info", str(artifact)).stdout
    assert "request modes: main (default main)" in out


def test_it_serves_main_only_and_names_it_on_every_protocol(single):
    srv, artifact, _ = single
    x = _x(2)
    info = httpx.get(f"{srv.url}/info", timeout=10).json()
    assert info["modes"] == ["main"] and info["default_mode"] == "main"
    want = raw_outputs(artifact, "main", x)["logits"]
    r = httpx.post(f"{srv.url}/predict", json={"inputs": x.tolist()}, timeout=30)  # no mode: the artifact's default
    assert r.status_code == 200 and r.json()["mode"] == "main"
    np.testing.assert_allclose(r.json()["logits"], want, rtol=1e-5, atol=1e-5)
    png = io.BytesIO()
    Image.fromarray((x[0, 0] * 255).astype(np.uint8)).save(png, format="PNG")
    doc = {"inputs": [{"name": "images", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    for mode in ("second", "all"):
        answers = [
            httpx.post(
                f"{srv.url}/classify",
                files={"image": ("x.png", png.getvalue(), "image/png")},
                data={"mode": mode},
                timeout=30,
            ),
            httpx.post(f"{srv.url}/v2/models/{mode}/infer", json=doc, timeout=30),
        ]
        assert [(a.status_code, a.json()["error"]) for a in answers] == [(404, NOT_HERE.format(mode))] * 2
    tensor = tgrpc.InferInput("images", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    client = tgrpc.InferenceServerClient(url=srv.grpc_url)
    try:
        np.testing.assert_allclose(client.infer("main", [tensor]).as_numpy("logits"), want, rtol=1e-5, atol=1e-5)
        with pytest.raises(tgrpc.InferenceServerException) as err:
            client.infer("second", [tensor])
        assert err.value.status() == "StatusCode.NOT_FOUND" and err.value.message() == NOT_HERE.format("second")
        stats = client.get_inference_statistics(as_json=True)["model_stats"]
        assert [s["name"] for s in stats] == ["main"]
    finally:
        client.close()
