"""The ``dhat`` command line: the runtime's own commands plus those each installed package registers.

``dhat_serve`` owns ``serve`` and ``info``. ``training`` (``train``, ``models``, ``eval``, ``recipes``) and
``export`` (``export``) register theirs as entry points in the ``dhat.commands`` group (see
``pyproject.toml``), so this module imports neither package: the runtime sits below them. A command
whose dependencies are not installed (the serving image has no torch) still appears in ``dhat --help``
and, when run, says which extra to install instead of printing a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dhat_serve.auth import ApiKeys
from dhat_serve.card import CARD_FILE, NOT_EVALUATED, WORST_CASE, Card, load_card
from dhat_serve.config import PROVIDER_CHOICES, ServeConfig
from dhat_serve.console import console, fail, setup_logging
from dhat_serve.manifest import ArtifactError, load_manifest

COMMAND_GROUP = "dhat.commands"
DISTRIBUTION = "dhat-serve"

app = typer.Typer(help="Dual Head Adversarial Training: train, export, evaluate and serve.", no_args_is_help=True)


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False) -> None:
    """Dual Head Adversarial Training: train, export, evaluate and serve."""
    setup_logging(verbose)


ArtifactArg = Annotated[
    Path | None, typer.Argument(help="artifact directory (default: $DHAT_ARTIFACT, else BentoML store dhat:latest)")
]
GrpcPort = Annotated[
    int,
    typer.Option(
        help="also serve the Open Inference Protocol over gRPC on this port (0: off; default $DHAT_GRPC_PORT or off)"
    ),
]
CertFile = Annotated[Path | None, typer.Option(help="TLS certificate (PEM) for HTTP and gRPC")]
KeyFile = Annotated[Path | None, typer.Option(help="TLS private key (PEM) for HTTP and gRPC")]
"""``dhat serve``'s argument and longer options, declared once here so the command reads as its logic."""


@app.command()
def serve(
    artifact: ArtifactArg = None,
    port: Annotated[int, typer.Option(help="HTTP port")] = 3000,
    host: Annotated[str, typer.Option(help="interface to listen on (0.0.0.0 exposes it to the network)")] = "127.0.0.1",
    provider: Annotated[str, typer.Option(help="auto (CUDA if a GPU is visible), cpu or cuda")] = "auto",
    grpc_port: GrpcPort = -1,
    ssl_certfile: CertFile = None,
    ssl_keyfile: KeyFile = None,
) -> None:
    """Serve an artifact with BentoML: HTTP (POST /classify, POST /predict, /v2 OIP, GET /info) and, if asked, gRPC."""
    if provider not in PROVIDER_CHOICES:
        fail(f"--provider {provider!r}: use {', '.join(PROVIDER_CHOICES)}")
    if not -1 <= grpc_port <= 65535 or (grpc_port == port and grpc_port > 0):
        fail(f"--grpc-port {grpc_port}: use a free port in 1-65535 other than --port {port}, or 0 for no gRPC")
    env = dict(os.environ, DHAT_PROVIDER=provider, DHAT_GRPC_HOST=host)
    if grpc_port >= 0:
        env["DHAT_GRPC_PORT"] = str(grpc_port)
    tls = tls_args(ssl_certfile, ssl_keyfile, env)
    artifact = artifact or (Path(env["DHAT_ARTIFACT"]) if env.get("DHAT_ARTIFACT") else None)
    if artifact is not None:  # (dhat:latest from the BentoML store is checked by each worker as it loads)
        try:
            load_card(artifact, load_manifest(artifact))  # refuse a bad file, hash or card before starting anything
        except ArtifactError as exc:
            fail(str(exc))
        env["DHAT_ARTIFACT"] = str(artifact.resolve())
    working_dir = str(Path(__file__).resolve().parent.parent)
    cfg = checked_settings(host)
    grace = int(max(1, cfg.grace_s))  # SIGTERM: stop accepting, answer what was accepted
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "dhat_serve.service:DHAT",
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        working_dir,
        "--timeout-graceful-shutdown",
        str(grace),
        "--timeout-keep-alive",
        str(cfg.keep_alive_s),
        *tls,
    ]
    grpc = int(env.get("DHAT_GRPC_PORT") or 0)
    console.print(
        f"serving {env.get('DHAT_ARTIFACT', 'dhat:latest')} on http{'s' if tls else ''}://{host}:{port}"
        + (f" and grpc://{host}:{grpc}" if grpc else "")
    )
    sys.stdout.flush()
    os.execvpe(sys.executable, cmd, env)


def checked_settings(host: str) -> ServeConfig:
    """``DHAT_*`` read and checked before any worker starts (a bad warm-up list or keys file is a message here,
    not a worker's traceback); warns when a non-loopback interface is opened without API keys."""
    cfg = ServeConfig.from_env()
    try:
        cfg.warmup_sizes()
        cfg.gpu_ids(0)
        keys = ApiKeys.from_config(cfg)
    except ValueError as exc:
        fail(str(exc))
    for warning in keys.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if not keys.enabled and host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[yellow]warning:[/] listening on {host} without API keys: anyone who can reach the port "
            "can use it (set DHAT_API_KEYS_FILE)"
        )
    return cfg


def tls_args(certfile: Path | None, keyfile: Path | None, env: dict[str, str]) -> list[str]:
    """BentoML's ``--ssl-*`` arguments, and the same files in ``env`` for the gRPC server; both or neither."""
    if (certfile is None) != (keyfile is None):
        fail("--ssl-certfile and --ssl-keyfile go together: give both for TLS, or neither")
    if certfile is None or keyfile is None:
        return []
    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if not path.is_file():
            fail(f"{flag} {path}: no such file")
    cert, key = str(certfile.resolve()), str(keyfile.resolve())
    env["DHAT_SSL_CERTFILE"], env["DHAT_SSL_KEYFILE"] = cert, key
    return ["--ssl-certfile", cert, "--ssl-keyfile", key]


@app.command()
def info(
    artifact: Annotated[Path, typer.Argument(help="artifact directory from `dhat export`")],
    as_json: Annotated[bool, typer.Option("--json", help="print the verified manifest as JSON")] = False,
) -> None:
    """Verify an artifact (every file's size and sha256) and describe what it serves."""
    try:
        manifest = load_manifest(artifact)
        card = load_card(artifact, manifest)
    except ArtifactError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps({**manifest.to_dict(), "card": card.doc if card else NOT_EVALUATED}, indent=2))
        return
    console.print(
        f"{manifest.name} {manifest.version} ({manifest.precision}), {manifest.num_classes} classes, "
        f"input (N, {', '.join(map(str, manifest.input_shape))}) in {list(manifest.input_range)}"
    )
    console.print(f"request modes: {', '.join(manifest.request_modes)} (default {manifest.default_mode})")
    table = Table(title="graphs (hashes verified)")
    for col in ("mode", "file", "size", "outputs", "max |torch - ORT|", "sha256"):
        table.add_column(col)
    for mode, g in manifest.modes.items():
        table.add_row(
            mode,
            g.file,
            f"{g.size / 1e6:.2f} MB",
            ", ".join(g.outputs),
            f"{g.parity.get('max_abs_diff', float('nan')):.2e}",
            g.sha256[:16],
        )
    console.print(table)
    print_card(card)


def print_card(card: Card | None) -> None:
    """The robustness card as a table (mode x attack: accuracy and 95 % interval), or "not evaluated"."""
    if card is None:
        console.print(NOT_EVALUATED["note"])
        return
    doc = card.doc
    table = Table(
        title=f"robustness card ({CARD_FILE}, bound to these graphs): {doc['data']['dataset']}, n = "
        f"{doc['data']['n']}, L-inf eps = {doc['eps']:.4g}, {doc['date']}"
    )
    for col in ("mode", "attack", "accuracy", "95 % interval", "budget"):
        table.add_column(col)
    for mode, entry in card.modes.items():
        rows = [
            *entry["attacks"],
            *([{"attack": WORST_CASE, **entry["worst_case"]}] if entry.get("worst_case") else []),
        ]
        for r in rows:
            budget = ", ".join(f"{k} {r[k]}" for k in ("steps", "restarts", "queries") if k in r)
            ci = r.get("ci95") or [float("nan")] * 2
            table.add_row(
                mode, r["attack"], f"{100 * r['accuracy']:.2f} %", f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]", budget
            )
    console.print(table)


def missing_extra_message(command: str, extras: list[str], missing: str | None) -> str:
    """What to tell a user whose environment lacks the packages ``command`` needs."""
    extra = ",".join(extras) or "train"
    return (
        f"`dhat {command}` needs the [{extra}] extra (module {missing!r} is not installed); install it with "
        f"`pip install '{DISTRIBUTION}[{extra}]'` (this environment has the serving runtime only)"
    )


def guarded(command: str, extras: list[str], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with a missing dependency turned into ``missing_extra_message`` (typer reads the wrapped signature)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ModuleNotFoundError as exc:
            fail(missing_extra_message(command, extras, exc.name))

    return run


def unavailable(command: str, extras: list[str], exc: ImportError) -> Callable[..., None]:
    """A stand-in for a command whose module cannot even be imported: it only says what to install."""

    def run() -> None:
        fail(missing_extra_message(command, extras, getattr(exc, "name", None)))

    run.__doc__ = f"Not installed: needs the extra {','.join(extras) or 'train'} (pip install dhat-serve with it)."
    return run


def add_registered_commands(target: typer.Typer, found: list[EntryPoint] | None = None) -> list[str]:
    """Register every ``dhat.commands`` entry point on ``target``; return the command names added."""
    names = []
    for ep in found if found is not None else entry_points(group=COMMAND_GROUP):
        if ep.name in names:
            continue  # an editable install and a built one may both list it
        try:
            command = guarded(ep.name, list(ep.extras), ep.load())
        except ImportError as exc:
            command = unavailable(ep.name, list(ep.extras), exc)
        target.command(ep.name)(command)
        names.append(ep.name)
    return names


add_registered_commands(app)


def main() -> None:
    """Console-script entry point (``dhat``)."""
    app()


if __name__ == "__main__":  # `python -m dhat_serve.cli` (and `torchrun -m dhat_serve.cli`)
    app()
