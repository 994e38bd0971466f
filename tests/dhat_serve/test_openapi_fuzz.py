"""Fuzz the live service from its own OpenAPI schema with schemathesis: no input may produce a 5xx.

Runs schemathesis' CLI (its pytest plugin does not load under pytest 9); ``make fuzz`` runs the same
against a server you started yourself, with more examples.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.server import Server


def test_fuzzing_the_openapi_schema_finds_no_server_error(tmp_path, symmetric_artifact):
    _, artifact = symmetric_artifact
    srv = Server(artifact, tmp_path / "server.log", DHAT_PROVIDER="cpu")
    try:
        srv.wait_ready()
        cli = Path(sys.executable).parent / "schemathesis"
        result = subprocess.run(
            [str(cli), "run", f"{srv.url}/docs.json", "--checks", "not_a_server_error", "--max-examples", "40",
             "--include-path-regex", "^/(classify|predict)$", "--request-timeout", "30", "--generation-deterministic",
             "--no-color"],
            capture_output=True, text=True, timeout=600)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
        assert "Tested: 2" in output and "failures" not in output, output[-3000:]
    finally:
        srv.stop()
