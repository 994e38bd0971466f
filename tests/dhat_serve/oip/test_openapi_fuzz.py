"""Fuzz the live service from its OpenAPI descriptions with schemathesis: no input may produce a 5xx.

Two descriptions, one server: the service's (``/openapi.json``, ``dhat_serve/http/openapi.py``: ``/classify``,
``/predict``) and the Open Inference Protocol's (``/v2/openapi.json``, ``dhat_serve/oip/openapi.py``). Runs
schemathesis' CLI (its pytest plugin does not load under pytest 9); ``make fuzz`` runs the same against a server
you started yourself, with more examples. After each run the server still answers a good request.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from dhat_serve.local_server import Server, serving

pytestmark = pytest.mark.slow  # fuzzing: the full tier


@pytest.fixture(scope="module")
def server(tmp_path_factory, symmetric_artifact):
    _, artifact = symmetric_artifact
    with serving(artifact, tmp_path_factory.mktemp("fuzz") / "server.log", DHAT_PROVIDER="cpu") as srv:
        yield srv


def schemathesis(schema_url: str, *args: str) -> str:
    cli = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(cli),
            "run",
            schema_url,
            "--checks",
            "not_a_server_error",
            "--request-timeout",
            "30",
            "--generation-deterministic",
            "--no-color",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "failures" not in output, output[-3000:]
    return output


def still_answers(srv: Server) -> None:
    x = np.full((1, 1, 8, 8), 0.5, np.float32)
    doc = {"inputs": [{"name": "images", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x.ravel().tolist()}]}
    r = httpx.post(f"{srv.url}/v2/models/merged/infer", json=doc, timeout=30)
    assert r.status_code == 200 and len(r.json()["outputs"][0]["data"]) == 10


def test_fuzzing_classify_and_predict_finds_no_server_error(server):
    output = schemathesis(
        f"{server.url}/openapi.json", "--max-examples", "40", "--include-path-regex", "^/(classify|predict)$"
    )
    assert "Tested: 2" in output, output[-3000:]
    still_answers(server)


def test_fuzzing_the_inference_protocol_finds_no_server_error(server):
    doc = httpx.get(f"{server.url}/v2/openapi.json", timeout=10).json()
    operations = sum(len(methods) for methods in doc["paths"].values())
    assert operations == 14 and doc["paths"]["/v2/models/{model}/infer"]["post"]["requestBody"]
    output = schemathesis(f"{server.url}/v2/openapi.json", "--max-examples", "15")
    assert f"Tested: {operations}" in output, output[-3000:]
    still_answers(server)
