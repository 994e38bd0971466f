"""The ``dhat`` app: its own commands, and commands other packages register as entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import typer
from typer.testing import CliRunner

from dhat_serve.cli import COMMAND_GROUP, add_registered_commands, app, missing_extra_message


def _app_with(*entry_points: EntryPoint) -> typer.Typer:
    target = typer.Typer()

    @target.callback()
    def _root() -> None:
        """test app"""

    add_registered_commands(target, list(entry_points))
    return target


def test_installed_packages_register_their_commands():
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert {"serve", "info", "train", "models", "recipes", "eval", "export", "gate", "frontier"} <= names


def test_a_command_whose_module_cannot_import_says_which_extra_to_install():
    ep = EntryPoint(name="ghost", value="no_such_package_xyz.cli:run [gpu]", group=COMMAND_GROUP)
    result = CliRunner().invoke(_app_with(ep), ["ghost"])
    assert result.exit_code == 2
    assert "`dhat ghost` needs the [gpu] extra" in result.output
    assert "'no_such_package_xyz'" in result.output and "pip install 'dhat-serve[gpu]'" in result.output
    help_text = CliRunner().invoke(_app_with(ep), ["--help"], env={"COLUMNS": "200"}).output
    assert "Not installed: needs the extra gpu" in help_text


def test_a_missing_module_inside_a_registered_command_is_a_message_not_a_traceback():
    ep = EntryPoint(
        name="needs", value="tests.dhat_serve.test_cli:_needs_a_missing_module [train]", group=COMMAND_GROUP
    )
    result = CliRunner().invoke(_app_with(ep), ["needs", "--count", "3"])
    assert result.exit_code == 2 and result.exception is None or isinstance(result.exception, SystemExit)
    assert "`dhat needs` needs the [train] extra (module 'not_installed_anywhere_abc'" in result.output


def test_a_registered_command_keeps_its_options():
    ep = EntryPoint(
        name="needs", value="tests.dhat_serve.test_cli:_needs_a_missing_module [train]", group=COMMAND_GROUP
    )
    assert "--count" in CliRunner().invoke(_app_with(ep), ["needs", "--help"]).output


def _needs_a_missing_module(count: int = 1) -> None:
    """A command that imports a dependency only when it runs (as ``training/cli.py`` does with torch)."""
    import not_installed_anywhere_abc  # noqa: F401


def test_missing_extra_message_defaults_to_train():
    assert "[train]" in missing_extra_message("eval", [], "torch")


def test_info_verifies_and_describes_an_artifact(symmetric_artifact):
    result = CliRunner().invoke(app, ["info", str(symmetric_artifact[1])])
    assert result.exit_code == 0, result.output
    assert "request modes: main, second, merged, all (default merged)" in result.output
    assert "merged.onnx" in result.output and "logits, main_logits, second_logits" in result.output


def test_info_refuses_a_tampered_artifact_naming_the_file(tmp_path, symmetric_artifact):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(symmetric_artifact[1], copy)
    data = bytearray((copy / "second.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "second.onnx").write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["info", str(copy)])
    assert result.exit_code == 2
    assert "second.onnx" in result.output and "sha256 does not match" in result.output


def test_serve_refuses_a_grpc_port_out_of_range_or_equal_to_the_http_port(tmp_path):
    for args, message in (
        (["--grpc-port", "70000"], "--grpc-port 70000"),
        (["--port", "3100", "--grpc-port", "3100"], "other than --port 3100"),
    ):
        result = CliRunner().invoke(app, ["serve", str(tmp_path), *args])
        assert result.exit_code != 0 and message in result.output, result.output


def test_serve_needs_both_tls_files_and_names_a_missing_one(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--ssl-certfile", str(cert)])
    assert result.exit_code != 0 and "--ssl-certfile and --ssl-keyfile go together" in result.output
    result = CliRunner().invoke(
        app, ["serve", str(tmp_path), "--ssl-certfile", str(cert), "--ssl-keyfile", "/nope.pem"]
    )
    assert result.exit_code != 0 and "--ssl-keyfile /nope.pem: no such file" in result.output


def test_serve_warns_when_it_opens_the_network_without_keys_and_passes_tls_on(
    tmp_path, monkeypatch, symmetric_artifact
):
    """`dhat serve` execs BentoML; the exec is captured here to read the command it would run."""
    import os

    _, artifact = symmetric_artifact
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("c")
    key.write_text("k")
    ran: dict = {}
    monkeypatch.setattr(os, "execvpe", lambda exe, cmd, env: ran.update(cmd=cmd, env=env))
    monkeypatch.delenv("DHAT_API_KEYS", raising=False)
    monkeypatch.delenv("DHAT_API_KEYS_FILE", raising=False)
    result = CliRunner().invoke(
        app,
        [
            "serve",
            str(artifact),
            "--host",
            "0.0.0.0",
            "--grpc-port",
            "8001",
            "--ssl-certfile",
            str(cert),
            "--ssl-keyfile",
            str(key),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "without API keys" in result.output and "https://0.0.0.0" in result.output
    assert ran["cmd"][-4:] == ["--ssl-certfile", str(cert.resolve()), "--ssl-keyfile", str(key.resolve())]
    assert ran["env"]["DHAT_GRPC_PORT"] == "8001" and ran["env"]["DHAT_SSL_KEYFILE"] == str(key.resolve())
    keys = tmp_path / "keys"
    keys.write_text("a-key\n")
    monkeypatch.setenv("DHAT_API_KEYS_FILE", str(keys))
    result = CliRunner().invoke(app, ["serve", str(artifact), "--host", "0.0.0.0"])
    assert result.exit_code == 0 and "without API keys" not in result.output
