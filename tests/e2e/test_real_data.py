"""Real data end to end: an image folder (train -> export -> serve -> /classify answers its class names),
and a few batches of the official Fashion-MNIST files when Debian's package is installed (CI installs it).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from dhat_serve.local_server import Server
from tests.helpers.cli import dhat
from tests.helpers.data_files import CLASSES, write_folder
from training.data import DEBIAN_FASHION_MNIST

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FOLDER_RECIPE = """
name: folder
data: {dataset: imagefolder, image_size: 8, batch_size: 8, val_size: 6}
model: {arch: wrn-10-1-s4, layout: symmetric}
validation: {n: 6, attack: {eps: 0.05, step: 0.02, steps: 2}}
stage1: {method: trades, beta: 6, epochs: 2, lr: 0.05, milestones: [], attack: {eps: 0.05, step: 0.02, steps: 2}}
stage2: {method: trades, beta: 3, epochs: 1, lr: 0.05, milestones: [], attack: {eps: 0.05, step: 0.02, steps: 2}}
stage3: {method: trades, beta: 2, epochs: 1, lr: 0.02, milestones: [], attack: {eps: 0.05, step: 0.02, steps: 2}}
"""


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_an_image_folder_trains_exports_and_serves_its_own_class_names(tmp_path):
    folder = write_folder(tmp_path / "photos", per_class=8, size=(24, 16))
    recipe = tmp_path / "folder.yaml"
    recipe.write_text(FOLDER_RECIPE)
    run, artifact = tmp_path / "run", tmp_path / "artifact"
    dhat("train", str(recipe), "--data-dir", str(folder), "--out", str(run))
    dhat("export", str(run), "--out", str(artifact))
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["class_names"] == list(CLASSES) and manifest["input"]["shape"] == [None, 3, 8, 8]
    image = Image.open(folder / "test" / "zebra" / "1.png").convert("RGB")
    x = np.asarray(image.resize((8, 8), Image.BILINEAR), dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    expected = int(
        ort.InferenceSession(str(artifact / "main.onnx"), providers=["CPUExecutionProvider"])
        .run(None, {"images": x})[0]
        .argmax()
    )
    srv = Server(artifact, tmp_path / "server.log", DHAT_PROVIDER="cpu")
    try:
        srv.wait_ready()
        info = httpx.get(f"{srv.url}/info", timeout=10).json()
        assert info["class_names"] == list(CLASSES)
        r = httpx.post(
            f"{srv.url}/classify",
            files={"image": ("z.png", png(np.asarray(image)), "image/png")},
            data={"mode": "main"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.json()["class_name"] == CLASSES[expected] and r.json()["label"] == expected
    finally:
        srv.stop()


@pytest.mark.skipif(
    not Path(DEBIAN_FASHION_MNIST).is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)",
)
def test_a_few_batches_of_the_real_fashion_mnist_files(tmp_path):
    run = tmp_path / "run"
    dhat(
        "train",
        "fashion-mnist-cpu",
        "--out",
        str(run),
        "--stage",
        "1",
        "data.train_size=128",
        "stage1.epochs=1",
        "validation.n=64",
    )
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert row["stage"] == 1 and 0.0 <= row["val_robust"] <= row["val_clean"] <= 1.0
    config = json.loads((run / "stage1/best/config.json").read_text())
    assert config["model"]["class_names"][9] == "Ankle boot" and config["model"]["input_size"] == 16
