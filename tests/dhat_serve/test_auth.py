"""API keys, TLS and CORS on the live server, HTTP and gRPC, spoken by stock clients."""

from __future__ import annotations

import io
import subprocess
from contextlib import closing

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from PIL import Image
from tritonclient.utils import InferenceServerException

from dhat_serve.auth import EVERY_MODE, Access, ApiKeys
from dhat_serve.config import ServeConfig
from dhat_serve.errors import Forbidden, Unauthorized
from dhat_serve.local_server import serving

KEY, ORIGIN = "k-7f3a9c2e51", "https://app.example"
TIER_KEY = "k-public-2b8d41"  # may use merged and all only


def test_keys_are_checked_in_constant_time_and_come_from_a_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# team A\nalpha-key\n\n  beta-key  \n")
    keys = ApiKeys.from_config(ServeConfig(api_keys="gamma", api_keys_file=str(path)))
    assert keys.enabled and len(keys.keys) == 3
    assert keys.problem("Bearer beta-key") is None and keys.problem("bearer gamma") is None
    assert keys.problem(None).startswith("no API key")
    assert "must be 'Bearer KEY'" in keys.problem("Basic alpha-key")
    assert keys.problem("Bearer alpha") == "wrong API key"
    assert not ApiKeys.from_config(ServeConfig()).enabled
    with pytest.raises(ValueError, match="DHAT_API_KEYS_FILE=/nope: no such file"):
        ApiKeys.from_config(ServeConfig(api_keys_file="/nope"))


def test_a_key_line_may_name_its_modes_and_a_malformed_line_names_its_number(tmp_path):
    path = tmp_path / "keys"
    path.write_text("plain-key\n# comment\ntier-key  modes=merged,all   # public clients\n")
    keys = ApiKeys.from_config(ServeConfig(api_keys="env-key", api_keys_file=str(path)))
    assert keys.identify("Bearer plain-key") == (None, EVERY_MODE)
    assert keys.identify("Bearer env-key") == (None, EVERY_MODE)
    problem, access = keys.identify("Bearer tier-key")
    assert problem is None and access == Access(("merged", "all")) and access.default("main") == "merged"
    with pytest.raises(Forbidden, match=r"may not use mode 'main'; its modes: merged, all"):
        access.check("main")
    assert EVERY_MODE.default("merged") == "merged" and EVERY_MODE.check("main") is None
    with pytest.raises(Unauthorized, match="wrong API key: ModelInfer needs an API key"):
        keys.access("Bearer tier", "ModelInfer")
    path.write_text("plain-key\npublic-key modes=merged,all\n")
    (warning,) = ApiKeys.from_config(ServeConfig(api_keys_file=str(path))).warnings
    assert "line 2: mode all answers main's and second's logits" in warning and "public-key" not in warning
    for line, message in (
        ("ok-key modes=merged", "line 2: this key is already configured"),
        ("k modes=", r"line 2: unknown mode\(s\) \[''\]"),
        ("k modes=main,best", r"line 2: unknown mode\(s\) \['best'\]; modes: main, second, merged, all"),
        ("k tier=gold", r"line 2: expected 'KEY' or 'KEY modes=MODE\[,MODE...\]'"),
        ("k modes=main extra", "line 2: expected"),
    ):
        path.write_text(f"ok-key\n{line}\n")
        with pytest.raises(ValueError, match=message) as info:
            ApiKeys.from_config(ServeConfig(api_keys_file=str(path)))
        assert str(path) in str(info.value)


@pytest.fixture(scope="module")
def server(tmp_path_factory, symmetric_artifact):
    _, artifact = symmetric_artifact
    root = tmp_path_factory.mktemp("auth")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    (root / "keys").write_text(f"# deploy key\n{KEY}\n{TIER_KEY} modes=merged,all  # public tier\n")
    with serving(
        artifact,
        root / "server.log",
        grpc=True,
        tls=(cert, key),
        DHAT_PROVIDER="cpu",
        DHAT_API_KEYS_FILE=str(root / "keys"),
        DHAT_CORS_ORIGINS=ORIGIN,
    ) as srv:
        yield srv, artifact, cert


def _body(n: int = 2) -> dict:
    x = np.full((n, 1, 8, 8), 0.5, np.float32)
    return {"inputs": [{"name": "images", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


def test_https_needs_a_key_for_inference_and_metadata_but_not_for_probes(server):
    srv, _, cert = server
    with httpx.Client(verify=srv.verify, timeout=30) as http:
        for path in ("/v2/health/ready", "/v2/health/live", "/readyz", "/healthz", "/metrics"):
            assert http.get(srv.url + path).status_code == 200, path
        for headers, reason in (
            ({}, "no API key"),
            ({"Authorization": "Bearer nope"}, "wrong API key"),
            ({"Authorization": KEY}, "must be 'Bearer KEY'"),
        ):
            r = http.post(f"{srv.url}/v2/models/main/infer", json=_body(), headers=headers)
            assert r.status_code == 401 and reason in r.json()["error"], r.text
            assert r.headers["WWW-Authenticate"] == 'Bearer realm="dhat"'
            assert r.headers.get("Connection") != "close"  # the body was read first: the connection stays usable
        assert http.get(f"{srv.url}/info").status_code == 401
        assert http.get(f"{srv.url}/v2/models/merged").status_code == 401
        auth = {"Authorization": f"Bearer {KEY}"}
        r = http.post(f"{srv.url}/v2/models/main/infer", json=_body(), headers=auth)
        assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [2, 10]
        assert http.get(f"{srv.url}/info", headers=auth).json()["modes"] == ["main", "second", "merged", "all"]
    # Closed explicitly: a keep-alive connection left to the garbage collector holds the server's graceful
    # shutdown open until the helper's 30 s SIGKILL.
    with closing(
        thttp.InferenceServerClient(srv.url.removeprefix("https://"), ssl=True, ssl_options={"ca_certs": str(cert)})
    ) as client:
        inp = thttp.InferInput("images", [1, 1, 8, 8], "FP32")
        inp.set_data_from_numpy(np.full((1, 1, 8, 8), 0.25, np.float32), binary_data=True)
        assert client.infer("all", [inp], headers=auth).as_numpy("main_logits").shape == (1, 10)
        with pytest.raises(InferenceServerException, match="no API key"):
            client.infer("all", [inp])
    with pytest.raises(httpx.ConnectError):  # the certificate is not trusted without the test's CA file
        httpx.get(f"{srv.url}/v2/health/ready", timeout=10)


def test_grpc_over_tls_needs_the_key_and_answers_the_raw_sessions_logits(server):
    srv, artifact, cert = server
    with closing(tgrpc.InferenceServerClient(url=srv.grpc_url, ssl=True, root_certificates=str(cert))) as client:
        assert client.is_server_ready()  # health stays open
        x = np.random.default_rng(3).random((3, 1, 8, 8), dtype=np.float32)
        inp = tgrpc.InferInput("images", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        for headers in ({}, {"authorization": "Bearer wrong"}):
            with pytest.raises(InferenceServerException) as info:
                client.infer("merged", [inp], headers=headers)
            assert info.value.status() == "StatusCode.UNAUTHENTICATED" and "API key" in info.value.message()
        got = client.infer("merged", [inp], headers={"authorization": f"Bearer {KEY}"}).as_numpy("logits")
    session = ort.InferenceSession(str(artifact / "merged.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, session.run(["logits"], {"images": x})[0], atol=1e-5)


def test_cors_preflight_allows_the_configured_origin_only(server):
    srv, _, cert = server
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    with httpx.Client(verify=srv.verify, timeout=30) as http:
        ok = http.options(f"{srv.url}/v2/models/main/infer", headers={"Origin": ORIGIN, **ask})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
        refused = http.options(f"{srv.url}/v2/models/main/infer", headers={"Origin": "https://evil.example", **ask})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        r = http.post(
            f"{srv.url}/v2/models/main/infer",
            json=_body(1),
            headers={"Origin": ORIGIN, "Authorization": f"Bearer {KEY}"},
        )
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN


def test_the_key_never_reaches_the_log(server):
    srv, _, cert = server
    httpx.post(
        f"{srv.url}/v2/models/main/infer",
        json=_body(),
        headers={"Authorization": "Bearer almost-" + KEY},
        verify=srv.verify,
        timeout=30,
    )
    log = srv.log.read_text()
    assert KEY not in log and "wrong API key" in log


def test_a_tiered_key_is_refused_other_modes_on_every_protocol_and_counted(server):
    srv, _, cert = server
    tier, full = {"Authorization": f"Bearer {TIER_KEY}"}, {"Authorization": f"Bearer {KEY}"}
    x = np.full((1, 1, 8, 8), 0.5, np.float32)
    npy = io.BytesIO()
    np.save(npy, x)
    png = io.BytesIO()
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(png, format="PNG")
    with httpx.Client(verify=srv.verify, timeout=30) as http:
        refused = [
            http.post(f"{srv.url}/v2/models/main/infer", json=_body(1), headers=tier),
            http.post(f"{srv.url}/predict", json={"inputs": x.tolist(), "mode": "second"}, headers=tier),
            http.post(
                f"{srv.url}/predict?mode=main",
                content=npy.getvalue(),
                headers={**tier, "Content-Type": "application/x-npy"},
            ),
            http.post(f"{srv.url}/classify", files={"image": png.getvalue()}, data={"mode": "main"}, headers=tier),
            http.post(f"{srv.url}/v2/models/main/infer", content=b"not json", headers=tier),  # 403 whatever the body
        ]
        for r in refused:
            assert r.status_code == 403, r.text
            assert r.json()["error"].endswith("may not use mode 'main'; its modes: merged, all") or "'second'" in r.text
        # the key's first mode when the request names none; its own modes answer; a full key keeps every mode
        r = http.post(f"{srv.url}/predict", json={"inputs": x.tolist()}, headers=tier)
        assert r.status_code == 200 and r.json()["mode"] == "merged"
        assert http.post(f"{srv.url}/v2/models/all/infer", json=_body(1), headers=tier).status_code == 200
        assert http.post(f"{srv.url}/v2/models/main/infer", json=_body(1), headers=full).status_code == 200
        assert (
            http.get(f"{srv.url}/v2/models/main", headers=tier).status_code == 200
        )  # cards of every mode stay readable
        metrics = http.get(f"{srv.url}/metrics").text
    with closing(tgrpc.InferenceServerClient(url=srv.grpc_url, ssl=True, root_certificates=str(cert))) as client:
        inp = tgrpc.InferInput("images", [1, 1, 8, 8], "FP32")
        inp.set_data_from_numpy(x)
        with pytest.raises(InferenceServerException) as info:
            client.infer("second", [inp], headers={"authorization": f"Bearer {TIER_KEY}"})
        assert info.value.status() == "StatusCode.PERMISSION_DENIED"
        assert "its modes: merged, all" in info.value.message()
        assert client.infer("merged", [inp], headers={"authorization": f"Bearer {TIER_KEY}"}).as_numpy("logits").shape
    for endpoint in ("oip_http", "predict", "predict_npy", "classify"):
        assert f'endpoint="{endpoint}"' in metrics and "forbidden" in metrics
    counted = [line for line in metrics.splitlines() if 'outcome="forbidden"' in line and not line.startswith("#")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in counted) >= len(refused)
    assert TIER_KEY not in srv.log.read_text()
