"""The runtime sits below ``training`` and ``export``: it never imports them, nor torch, on any line."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import yaml

import dhat_serve

ROOT = Path(__file__).resolve().parents[2]
BLOCK = "import sys; sys.modules['torch'] = None; sys.modules['training'] = None; sys.modules['export'] = None; "
FORBIDDEN_IMPORT = re.compile(r"^\s*(from|import)\s+(torch|torchvision|training|export)\b")
FORBIDDEN_DYNAMIC = re.compile(r"(import_module|__import__)\(\s*['\"](torch|torchvision|training|export)\b")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_no_line_of_dhat_serve_imports_training_export_or_torch():
    files = sorted((ROOT / "dhat_serve").rglob("*.py"))
    assert len(files) >= 8
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not FORBIDDEN_IMPORT.match(line), f"{path.name}:{number}: {line.strip()}"
            assert not FORBIDDEN_DYNAMIC.search(line), f"{path.name}:{number}: {line.strip()}"


def test_the_grep_catches_an_indented_lazy_import():
    # the old test skipped indented lines of cli.py; make sure this one would fail on them
    assert FORBIDDEN_IMPORT.match("        from training.pipeline import train_recipe")
    assert FORBIDDEN_IMPORT.match("    import torch")
    assert not FORBIDDEN_IMPORT.match("from dhat_serve.contract import MODES  # training uses it")


def test_every_runtime_module_imports_with_torch_training_and_export_blocked():
    names = [m.name for m in pkgutil.iter_modules(dhat_serve.__path__, "dhat_serve.")]
    assert {"dhat_serve.cli", "dhat_serve.service", "dhat_serve.contract", "dhat_serve.runtime"} <= set(names)
    result = _run(BLOCK + f"import importlib; [importlib.import_module(n) for n in {names!r}]; print('ok')")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_dhat_serve_help_runs_with_torch_blocked():
    result = _run(BLOCK + "from dhat_serve.cli import main; sys.argv = ['dhat', 'serve', '--help']; main()")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Serve an artifact with BentoML" in result.stdout and "--provider" in result.stdout
    assert "--grpc-port" in result.stdout


def test_dhat_help_lists_every_package_command_with_torch_blocked():
    result = _run(BLOCK + "from dhat_serve.cli import main; sys.argv = ['dhat', '--help']; main()")
    assert result.returncode == 0, result.stderr[-2000:]
    for command in ("serve", "info", "train", "models", "recipes", "eval", "export"):
        assert re.search(rf"│ {command}\b", result.stdout), (command, result.stdout)


def test_a_torch_command_without_torch_names_the_extra_instead_of_a_traceback():
    result = _run(
        "import sys; sys.modules['torch'] = None; "
        "from dhat_serve.cli import main; sys.argv = ['dhat', 'train', 'digits']; main()"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "`dhat train` needs the [train] extra" in result.stdout
    assert "pip install 'dhat-serve[train]'" in result.stdout


def test_bentofile_packages_the_runtime_only():
    doc = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert doc["service"] == "dhat_serve.service:DHAT"
    assert not any(p.startswith(("torch", "torchvision", "pyautoattack")) for p in doc["python"]["packages"])
