"""Structure rules the code review asked for, checked on every file of the three packages."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dhat_serve", "training", "export")
CONTRACT_NAMES = {"main", "second", "merged", "all", "images", "logits", "main_logits", "second_logits"}


def _sources():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _definitions(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield prefix + node.name, node
            if isinstance(node, ast.ClassDef):
                yield from _definitions(node, prefix + node.name + ".")


def test_every_public_function_and_class_says_why():
    missing = []
    for path in _sources():
        for name, node in _definitions(ast.parse(path.read_text())):
            private = any(part.startswith("_") for part in name.split("."))
            if not private and ast.get_docstring(node) is None:
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not missing, "public definitions without a docstring:\n" + "\n".join(missing)


def test_mode_and_graph_names_are_spelled_only_in_the_contract():
    found = []
    for path in _sources():
        if path == ROOT / "dhat_serve" / "contract.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in CONTRACT_NAMES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not found, "use dhat_serve.contract instead of literals:\n" + "\n".join(found)


def test_run_directory_file_names_are_spelled_only_in_run_dir():
    homes = {
        "training/run_dir.py": ("recipe.yaml", "metrics.jsonl"),  # the run's own files
        "training/checkpoints.py": ("config.json", "model.safetensors", "optimizer.safetensors"),
    }  # a checkpoint's
    found = []
    for path in [*_sources(), ROOT / "scripts" / "demo.py"]:
        rel = str(path.relative_to(ROOT))
        names = tuple(n for home, spelled in homes.items() if home != rel for n in spelled)
        for node in ast.walk(ast.parse(path.read_text())):
            # a path literal ("stage3/last/config.json"); prose that mentions a file in a message is fine
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and " " not in node.value
                and node.value.endswith(names)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not found, "use training.run_dir instead of literals:\n" + "\n".join(found)


def test_functions_stay_under_60_lines_and_modules_under_300():
    long_functions, long_modules = [], []
    for path in _sources():
        text = path.read_text()
        if len(text.splitlines()) >= 300:
            long_modules.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            # the whole function, signature included (a typer command declares its options as module-level
            # Annotated aliases, so its signature is one line per parameter)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not long_functions and not long_modules, "\n".join(long_functions + long_modules)


RUNTIME_PUBLIC = {
    "dhat_serve",
    "dhat_serve.contract",
    "dhat_serve.manifest",
    "dhat_serve.card",
    "dhat_serve.runtime",
    "dhat_serve.console",
}
"""What ``training`` and ``export`` may import of the runtime: the package's version, the modes and graph
contract, the manifest and the robustness card (the artifact's two files: training writes a card, the service reads
it), the ONNX Runtime sessions, and the console every ``dhat`` command prints with.
The service, its data plane and its protocols are the runtime's own."""


def test_training_and_export_import_only_the_runtimes_public_modules():
    found = []
    for package in ("training", "export"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {n}"
                    for n in names
                    if n and n.split(".")[0] == "dhat_serve" and n not in RUNTIME_PUBLIC
                ]
    assert not found, "training/export reach into the runtime's internals:\n" + "\n".join(found)


def test_the_runtime_has_one_admission_check_one_observed_call_and_one_refusal_table():
    sources = {p: p.read_text() for p in sorted((ROOT / "dhat_serve").rglob("*.py"))}
    count = lambda needle: sum(text.count(needle) for text in sources.values())  # noqa: E731
    assert count("raise TooManyRequests(") == 1  # the data plane's admission
    assert count("await observed(") == 1  # DataPlane.infer: one observation per request
    assert count("GRPC_CODES = ") == 1 and count("StatusCode.INVALID_ARGUMENT") == 0  # the table lives in errors
    assert count("unreachable") == 0
