"""Start ``dhat serve`` on a free local port (HTTP, and gRPC if asked) and wait until it is ready.

What the tests, the benchmarks and a user's own integration tests share: a real server in its own process group,
stopped the way Kubernetes stops it (SIGTERM, then SIGKILL). It runs from the current directory, which is also
its ``PYTHONPATH`` (the repository root when the tests and benchmarks run)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(
    url: str, proc: subprocess.Popen, log: Path, timeout: float = 120, verify: bool | ssl.SSLContext = True
) -> None:
    """Poll readiness ``url`` until it answers 200; a server that exits first, or is not ready within
    ``timeout`` seconds, fails with the end of its ``log``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout}s: {log.read_text()[-3000:]}")


class Server:
    """``dhat serve ARTIFACT`` started now, its output in ``log``; ``env`` adds or overrides its environment."""

    def __init__(
        self, artifact: Path, log: Path, grpc: bool = False, tls: tuple[Path, Path] | None = None, **env: str
    ) -> None:
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # httpx: trust the test's own certificate
        self.verify: bool | ssl.SSLContext = ssl.create_default_context(cafile=str(tls[0])) if tls else True
        self.grpc_port = free_port() if grpc else 0
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        self.log = log
        # a short drain delay unless a test asks for one: every fixture's teardown is a SIGTERM
        full_env = {
            **os.environ,
            "DHAT_ARTIFACT": str(artifact),
            "PYTHONPATH": str(Path.cwd()),
            "DHAT_DRAIN_DELAY_S": "0.3",
            # BentoML keeps Prometheus' multiprocess files in BENTOML_HOME and clears them when a server starts:
            # servers sharing one home (tests on two xdist workers) would reset each other's metrics
            "BENTOML_HOME": str(log.parent / f"bentoml-home-{self.port}"),
            **env,
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dhat_serve.cli",
                "serve",
                str(artifact),
                "--port",
                str(self.port),
                "--grpc-port",
                str(self.grpc_port),
                *(["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])] if tls else []),
            ],
            cwd=Path.cwd(),
            env=full_env,
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        """Return once ``/readyz`` answers 200; raise with the end of the log if it exits or times out."""
        wait_until_ready(f"{self.url}/readyz", self.proc, self.log, timeout, self.verify)

    def stop(self) -> None:
        """SIGTERM the server's process group and wait; SIGKILL what is left after 30 s."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            return  # already gone (a test signalled it itself)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def serving(artifact: Path, log: Path, **kwargs: object) -> Iterator[Server]:
    """A ready ``Server(artifact, log, **kwargs)`` for the block, SIGTERMed after it whatever happens
    (what every module-scoped server fixture does)."""
    srv = Server(artifact, log, **kwargs)  # type: ignore[arg-type]
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()
