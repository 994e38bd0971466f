"""`dhat export --to-bentoml` puts the artifact in the BentoML model store, where the service and a built bento find
it."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from export.sample import TINY_CFG, make_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_export_to_bentoml_then_the_service_resolves_dhat_latest(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt", TINY_CFG)
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "PYTHONPATH": str(ROOT)}
    env.pop("DHAT_ARTIFACT", None)
    export = subprocess.run(
        [sys.executable, "-m", "dhat_serve.cli", "export", str(ckpt), "--out", str(tmp_path / "art"), "--to-bentoml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert export.returncode == 0, export.stdout[-2000:] + export.stderr[-2000:]
    assert "BentoML model store: dhat:" in export.stdout
    probe = (
        "from dhat_serve.config import ServeConfig; from dhat_serve.service import resolve_artifact_dir; "
        "from dhat_serve.manifest import load_manifest; d = resolve_artifact_dir(ServeConfig()); "
        "print(load_manifest(d).version)"
    )
    found = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr[-2000:]
    import json

    assert found.stdout.strip().endswith(json.loads((tmp_path / "art/manifest.json").read_text())["version"])
    build_and_serve_the_bento(env)


def build_and_serve_the_bento(env: dict[str, str]) -> None:
    """``bentoml build`` of both bentofiles (GPU and CPU images; no Docker needed for the bento), then
    ``bentoml serve`` of the built CPU bento answers ``/v2/health/ready`` with the store's artifact."""
    import httpx

    from dhat_serve.local_server import free_port, wait_until_ready

    tags = []
    for bentofile in ("bentofile.yaml", "bentofile.cpu.yaml"):
        built = subprocess.run(
            [sys.executable, "-m", "bentoml", "build", "-f", bentofile, "--output", "tag"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
        tags.append(built.stdout.strip().splitlines()[-1].removeprefix("__tag__:"))
    assert all(t.startswith("dhat:") for t in tags) and tags[0] != tags[1], tags
    port = free_port()
    serve_env = {**env, "DHAT_DRAIN_DELAY_S": "0"}
    log = Path(env["BENTOML_HOME"]) / "bento-serve.log"
    with open(log, "w") as out:  # a file, not a pipe nobody reads while the server runs
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", tags[1], "--port", str(port)],
            cwd=env["BENTOML_HOME"],
            env=serve_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc, log)
        assert httpx.get(f"http://127.0.0.1:{port}/v2/models/merged", timeout=5).json()["name"] == "merged"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def test_without_any_artifact_the_service_says_how_to_provide_one(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "empty"), "PYTHONPATH": str(ROOT)}
    env.pop("DHAT_ARTIFACT", None)
    probe = (
        "from dhat_serve.config import ServeConfig; from dhat_serve.service import resolve_artifact_dir; "
        "resolve_artifact_dir(ServeConfig())"
    )
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "set DHAT_ARTIFACT" in r.stderr


def test_an_exported_artifact_is_imported_as_it_is_with_its_card(tmp_path, symmetric_artifact):
    import json
    import shutil

    from dhat_serve.card import CARD_FILE
    from dhat_serve.manifest import load_manifest
    from tests.dhat_serve.test_card import hand_card

    artifact = tmp_path / "artifact"
    shutil.copytree(symmetric_artifact[1], artifact)
    (artifact / CARD_FILE).write_text(json.dumps(hand_card(load_manifest(artifact))))
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "PYTHONPATH": str(ROOT)}

    def dhat(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "dhat_serve.cli", "export", *args]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)

    done = dhat(str(artifact), "--to-bentoml")
    assert done.returncode == 0 and "(with card.json)" in done.stdout, done.stdout + done.stderr
    stored = next((tmp_path / "bentoml" / "models" / "dhat").glob("*/card.json"))
    assert stored.read_text() == (artifact / CARD_FILE).read_text()
    assert "--out DIR is required" in dhat(str(artifact)).stdout
    (artifact / CARD_FILE).write_text((artifact / CARD_FILE).read_text().replace("0.42", "0.99"))
    refused = dhat(str(artifact), "--to-bentoml")
    assert refused.returncode == 2 and "digest does not match" in refused.stdout
