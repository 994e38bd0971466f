"""The serving side must run in an image without torch: importing it with torch blocked must work."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BLOCK_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['training'] = None; sys.modules['export'] = None; "


def test_service_runtime_and_cli_import_without_torch():
    code = BLOCK_TORCH + "import dhat_serve.service, dhat_serve.runtime, dhat_serve.manifest, dhat_serve.cli; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_dhat_serve_never_imports_training_or_export():
    for path in (ROOT / "dhat_serve").glob("*.py"):
        text = path.read_text()
        for line in text.splitlines():
            stripped = line.strip()
            if path.name == "cli.py" and line.startswith("    "):
                continue  # the CLI imports training/export lazily, inside the commands that need torch
            assert not stripped.startswith(("import torch", "from torch", "from training", "from export",
                                            "import training", "import export")), (path.name, line)


def test_bentofile_packages_the_runtime_only():
    doc = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert doc["service"] == "dhat_serve.service:DHAT"
    assert not any(p.startswith(("torch", "torchvision", "pyautoattack")) for p in doc["python"]["packages"])
