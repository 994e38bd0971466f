"""`dhat export --to-bentoml` puts the artifact in the BentoML model store, where the service finds it."""

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.checkpoints import TINY_CFG, make_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def test_export_to_bentoml_then_the_service_resolves_dhat_latest(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt", TINY_CFG)
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "PYTHONPATH": str(ROOT)}
    env.pop("DHAT_ARTIFACT", None)
    export = subprocess.run([sys.executable, "-m", "dhat_serve.cli", "export", str(ckpt), "--out", str(tmp_path / "art"),
                             "--to-bentoml"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert export.returncode == 0, export.stdout[-2000:] + export.stderr[-2000:]
    assert "BentoML model store: dhat:" in export.stdout
    probe = ("from dhat_serve.config import ServeConfig; from dhat_serve.service import resolve_artifact_dir; "
             "from dhat_serve.manifest import load_manifest; d = resolve_artifact_dir(ServeConfig()); "
             "print(load_manifest(d).version)")
    found = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr[-2000:]
    import json

    assert found.stdout.strip().endswith(json.loads((tmp_path / "art/manifest.json").read_text())["version"])


def test_without_any_artifact_the_service_says_how_to_provide_one(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "empty"), "PYTHONPATH": str(ROOT)}
    env.pop("DHAT_ARTIFACT", None)
    probe = ("from dhat_serve.config import ServeConfig; from dhat_serve.service import resolve_artifact_dir; "
             "resolve_artifact_dir(ServeConfig())")
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "set DHAT_ARTIFACT" in r.stderr
