"""The servers ``bench_peers`` compares, each started in its own process on free ports and stopped afterwards.

``dhat serve`` (with its defaults, or with what issue 30 turned off turned back on: ``DHAT_VARIANTS``), MLServer
1.7.1 with ``peers/mlserver_runtime.py`` and KServe 0.21.0 with ``peers/kserve_model.py``, the peers in virtual
environments of their own (``PINS``), so none of their dependencies meets the service's. The peers' model files read
``DHAT_PEER_THREADS`` (two ONNX Runtime intra-op threads, spinning off: the service's settings), so every server
runs the same kernels on the same ``merged.onnx``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.common import OUT
from dhat_serve.local_server import free_port, wait_until_ready

PEERS = Path(__file__).parent / "peers"
ROOT = Path(__file__).resolve().parents[1]
PINS = {
    "mlserver": ["mlserver==1.7.1", "onnxruntime==1.31.1", "uvloop==0.21.0"],
    "kserve": ["kserve==0.21.0", "onnxruntime==1.31.1"],
}
"""Each peer's venv: the releases the issue names; MLServer 1.7.1 needs uvloop 0.21 (NOTES.md), and ONNX
Runtime matches the service's 1.31 so every server runs the same kernels."""
DHAT_VARIANTS = {
    "dhat": {},
    "dhat-logged": {"DHAT_ACCESS_LOG": "1", "DHAT_TRACING": "1", "DHAT_INLINE_RUN_MS": "0"},
    "dhat-access": {"DHAT_ACCESS_LOG": "1"},
    "dhat-tracing": {"DHAT_TRACING": "1"},
    "dhat-thread": {"DHAT_INLINE_RUN_MS": "0"},
}
"""``dhat serve`` with its defaults, and with what issue 30 turned off by default turned back on (BentoML's access
log, its OpenTelemetry spans, a lone request's run on the event loop): all three (``dhat-logged``) or one at a
time, so one run says what each costs."""
MODEL = "merged"
PEER_ENV = {"DHAT_PEER_THREADS": "2", "PYTHONPATH": str(PEERS)}
"""What both peers' processes get: two intra-op threads (read by the peers' model files) and the model files."""


def ensure_venv(root: Path, name: str) -> Path:
    """``root/name``'s python with ``PINS[name]`` installed from the package index (skipped when already there)."""
    venv, marker = root / name, root / name / ".pins"
    if marker.is_file() and marker.read_text() == " ".join(PINS[name]):
        return venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PINS[name]], check=True)
    marker.write_text(" ".join(PINS[name]))
    return venv / "bin" / "python"


class Proc:
    """A server started in its own process group; ``stop`` SIGTERMs the group, SIGKILLs what is left after 30 s."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], http_port: int, grpc_port: int, cwd: Path | None = None
    ) -> None:
        self.name, self.http, self.grpc = name, f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
        self.log = OUT / f"peer-{name}.log"
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            cwd=cwd,
            stdout=open(self.log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 180) -> None:
        wait_until_ready(f"http://{self.http}/v2/models/{MODEL}/ready", self.proc, self.log, timeout)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def start_dhat(name: str, artifact: Path) -> Proc:
    """``dhat serve ARTIFACT`` with one worker on the CPU provider and ``DHAT_VARIANTS[name]``'s switches."""
    http_port, grpc_port = free_port(), free_port()
    argv = [sys.executable, "-m", "dhat_serve.cli", "serve", str(artifact)]
    argv += ["--port", str(http_port), "--grpc-port", str(grpc_port)]
    env = {"DHAT_WORKERS": "1", "DHAT_PROVIDER": "cpu", "PYTHONPATH": str(ROOT), **DHAT_VARIANTS[name]}
    return Proc(name, argv, env, http_port, grpc_port, ROOT)


def start_kserve(onnx: Path, venvs: Path) -> Proc:
    """KServe's Python ``ModelServer`` of ``onnx`` (``peers/kserve_model.py``; ``--workers 1``, no batching)."""
    http_port, grpc_port = free_port(), free_port()
    argv = [str(ensure_venv(venvs, "kserve")), str(PEERS / "kserve_model.py"), "--model", MODEL, "--onnx", str(onnx)]
    argv += ["--http_port", str(http_port), "--grpc_port", str(grpc_port)]
    return Proc("kserve", argv, PEER_ENV, http_port, grpc_port)


def start_mlserver(onnx: Path, venvs: Path) -> Proc:
    """``mlserver start`` of a model repository written here: ``peers/mlserver_runtime.py`` serving ``onnx``
    with adaptive batching (64 images or 2 ms) in the main process (``parallel_workers: 0``)."""
    http_port, grpc_port = free_port(), free_port()
    repo = OUT / "mlserver-repo"
    (repo / MODEL).mkdir(parents=True, exist_ok=True)
    settings = {"debug": False, "parallel_workers": 0, "http_port": http_port, "grpc_port": grpc_port}
    (repo / "settings.json").write_text(json.dumps({**settings, "metrics_port": free_port()}))
    model = {"name": MODEL, "implementation": "mlserver_runtime.OnnxModel", "parameters": {"uri": str(onnx)}}
    (repo / MODEL / "model-settings.json").write_text(
        json.dumps({**model, "max_batch_size": 64, "max_batch_time": 0.002})
    )
    mlserver = ensure_venv(venvs, "mlserver").parent / "mlserver"
    return Proc("mlserver", [str(mlserver), "start", str(repo)], PEER_ENV, http_port, grpc_port, repo)


def start(name: str, onnx: Path, artifact: Path, venvs: Path) -> Proc:
    """Start server ``name`` (a ``DHAT_VARIANTS`` key, ``kserve`` or ``mlserver``) of ``onnx`` (``artifact`` for
    dhat); an unknown name is a ``ValueError`` listing the known ones."""
    if name in DHAT_VARIANTS:
        return start_dhat(name, artifact)
    if name == "kserve":
        return start_kserve(onnx, venvs)
    if name == "mlserver":
        return start_mlserver(onnx, venvs)
    raise ValueError(f"unknown server {name!r}; known: mlserver, kserve, {', '.join(DHAT_VARIANTS)}")


@contextmanager
def serving(name: str, onnx: Path, artifact: Path, venvs: Path) -> Iterator[Proc]:
    """Server ``name`` started and ready for the block, stopped after it whatever happens."""
    proc = start(name, onnx, artifact, venvs)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()
