"""The whole embedded pipeline as a new user runs it: train (3 stages) -> export -> evaluate -> serve.

Slow (several minutes on 2 cores): marked ``e2e``; CI still runs it (``make test`` runs everything).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from dhat_serve.local_server import Server, free_port, wait_until_ready
from tests.helpers.cli import dhat
from training.attacks import robust_accuracy
from training.checkpoints import load_checkpoint
from training.datasets.digits import load_digits_splits
from training.models.dual_head import ModeView
from training.robustness.suite import pgd_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    run, artifact, report = root / "run", root / "artifact", root / "report"
    dhat("train", "digits", "--out", str(run))
    dhat("export", str(run), "--out", str(artifact))
    dhat(
        "eval",
        str(artifact),
        "--run",
        str(run),
        "--attacks",
        "clean,pgd20,square",
        "--n",
        "270",
        "--batch-size",
        "270",
        "--square-queries",
        "150",
        "--no-curve",
        "--out",
        str(report),
    )  # the curve: test_evaluate
    natural = root / "natural"
    dhat("train", "digits-natural", "--out", str(natural), "stage2.epochs=0", "stage3.epochs=0")  # main alone
    return run, artifact, json.loads((report / "report.json").read_text()), natural


def test_all_three_stages_ran_and_left_their_files(pipeline):
    run, artifact, _, _ = pipeline
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [sum(r["stage"] == s for r in rows) for s in (1, 2, 3)] == [15, 15, 6]
    for stage in (1, 2, 3):
        assert (run / f"stage{stage}/best/model.safetensors").is_file()
    assert (run / "training_curves.png").is_file() and (artifact / "manifest.json").is_file()


def test_robust_training_beats_a_natural_network_and_no_attack_beats_clean(pipeline):
    run, _, report, natural = pipeline
    results = report["results"]
    for mode, row in results.items():
        assert row["attacks"]["clean"]["disagreements"] == 0, mode
        for name, r in row["attacks"].items():
            assert r["graph"] <= row["attacks"]["clean"]["graph"], (mode, name)
    # the naturally trained main head, attacked the same way on the same test images
    net, _, _ = load_checkpoint(natural / "stage1/best")
    x, y = load_digits_splits(16).test.tensors
    torch.manual_seed(0)
    natural_pgd = robust_accuracy(ModeView(net.eval(), "main"), x, y, pgd_config("pgd20", report["eps"]))
    assert natural_pgd < 0.15, f"a naturally trained network should fall to near 0, got {natural_pgd:.3f}"
    main_pgd = results["main"]["attacks"]["pgd20"]["graph"]
    assert main_pgd > natural_pgd + 0.5, (main_pgd, natural_pgd)
    assert results["main"]["attacks"]["clean"]["graph"] > 0.9
    # Guarantees only: robust >> natural above, every score a probability. Whether merged beats main is a
    # research outcome that another seed or processor flips (8 of 270 images between two AMD EPYCs): it is
    # measured with its paired interval in the README's experiments, never asserted here.
    for row in results.values():
        assert all(0.0 <= r["graph"] <= 1.0 for r in row["attacks"].values())


def test_the_service_answers_each_mode_like_the_graph(pipeline, tmp_path):
    _, artifact, _, _ = pipeline
    x, y = load_digits_splits(16).test.tensors
    pixels = (x[0, 0].numpy() * 255).round().astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    srv = Server(artifact, tmp_path / "server.log", DHAT_PROVIDER="cpu")
    try:
        srv.wait_ready()
        image = (pixels.astype(np.float32) / 255.0)[None, None]
        for mode in ("main", "second", "merged"):
            r = httpx.post(
                f"{srv.url}/classify",
                files={"image": ("d.png", buf.getvalue(), "image/png")},
                data={"mode": mode},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            session = ort.InferenceSession(str(artifact / f"{mode}.onnx"), providers=["CPUExecutionProvider"])
            assert r.json()["label"] == int(session.run(None, {"images": image})[0].argmax())
        assert r.json()["label"] == int(y[0])
    finally:
        srv.stop()


def test_a_runtime_only_install_serves_the_artifact_without_torch(pipeline, tmp_path):
    """`pip install .` with no extras (the serving image): no torch, yet `dhat serve` answers /readyz and /predict."""
    _, artifact, _, _ = pipeline
    venv = tmp_path / "runtime-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py, dhat_bin = venv / "bin" / "python", venv / "bin" / "dhat"
    # --no-compile: byte-compiling onnxruntime and BentoML at install time costs ~11 s here and tests nothing
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-compile", str(ROOT)], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr[-3000:]
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    no_torch = subprocess.run(
        [str(py), "-c", "import torch"], capture_output=True, text=True, cwd=tmp_path, env=clean_env
    )
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    help_out = subprocess.run(
        [str(dhat_bin), "serve", "--help"], capture_output=True, text=True, cwd=tmp_path, env=clean_env
    )
    assert help_out.returncode == 0 and "Serve an artifact with BentoML" in help_out.stdout, help_out.stderr[-2000:]
    train = subprocess.run(
        [str(dhat_bin), "train", "digits"], capture_output=True, text=True, cwd=tmp_path, env=clean_env
    )
    assert train.returncode == 2 and "pip install 'dhat-serve[train]'" in train.stdout, (
        train.stdout,
        train.stderr[-2000:],
    )
    port = free_port()
    with open(tmp_path / "runtime-server.log", "w") as log:
        proc = subprocess.Popen(
            [str(dhat_bin), "serve", str(artifact), "--port", str(port), "--provider", "cpu"],
            cwd=tmp_path,
            env=clean_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(f"{url}/readyz", proc, tmp_path / "runtime-server.log")
        x = load_digits_splits(16).test.tensors[0][:4].numpy()
        r = httpx.post(f"{url}/predict", json={"inputs": x.tolist(), "mode": "merged"}, timeout=30)
        assert r.status_code == 200, r.text
        session = ort.InferenceSession(str(artifact / "merged.onnx"), providers=["CPUExecutionProvider"])
        assert r.json()["labels"] == session.run(None, {"images": x})[0].argmax(1).tolist()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_gate_passes_the_artifact_against_itself_and_fails_a_natural_one(pipeline, tmp_path):
    run, artifact, _, natural = pipeline
    dhat("export", str(natural), "--out", str(tmp_path / "natural"))
    common = ["--attacks", "clean,pgd20", "--n", "270", "--batch-size", "270", "--margin", "3"]

    def gate(candidate: Path, candidate_run: Path, out: str) -> subprocess.CompletedProcess:
        args = [str(candidate), "--run", str(candidate_run), "--against", str(artifact), "--against-run", str(run)]
        return subprocess.run(
            [sys.executable, "-m", "dhat_serve.cli", "gate", *args, *common, "--out", str(tmp_path / out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        )

    same = gate(artifact, run, "same")
    assert same.returncode == 0, same.stdout[-2000:] + same.stderr[-2000:]
    assert json.loads((tmp_path / "same" / "gate.json").read_text())["passed"]
    worse = gate(tmp_path / "natural", natural, "natural")  # a single-head artifact: its main against main
    assert worse.returncode == 1, worse.stdout[-2000:] + worse.stderr[-2000:]
    doc = json.loads((tmp_path / "natural" / "gate.json").read_text())
    assert "main / pgd20" in doc["failed"] and {c["mode"] for c in doc["cells"] if "missing" not in c} == {"main"}
    assert {c["mode"] for c in doc["cells"] if "missing" in c} == {"second", "merged"}  # its clients would get 404s
    assert "FAIL" in worse.stdout and "main / pgd20" in worse.stdout
