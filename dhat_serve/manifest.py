"""The artifact manifest: what the three graphs are, and proof they are the ones exported.

Torch-free; the service and the evaluator both load artifacts through ``load_manifest``, which
refuses a missing file, a hash mismatch or an unknown schema version, naming which.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dhat_serve.contract import INPUT_NAME, MODES, SINGLE_HEAD_GRAPHS, served_modes
from dhat_serve.contract import default_mode as default_request_mode

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"


class ArtifactError(ValueError):
    """An artifact that must not be served or evaluated; the message names the file and the problem."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file read in 1 MiB chunks (graphs can be hundreds of MB; never all in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class GraphEntry:
    """One mode's graph: file, hash, size, opset, outputs, and its measured parity with PyTorch."""

    file: str
    sha256: str
    size: int
    opset: int
    outputs: tuple[str, ...]
    parity: dict[str, Any] = field(default_factory=dict)
    external_data: dict[str, Any] | None = None  # {"file":, "sha256":, "size":} beyond 2 GB only


@dataclass(frozen=True)
class Manifest:
    """The whole of ``manifest.json``: what a deployer, the service and the evaluator need to trust a graph."""

    schema_version: int
    name: str
    version: str
    package_version: str
    precision: str
    architecture: dict[str, Any]
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]  # (C, H, W); the batch axis is dynamic
    input_range: tuple[float, float]
    modes: dict[str, GraphEntry]
    provenance: dict[str, Any]

    @property
    def request_modes(self) -> tuple[str, ...]:
        """The request modes this artifact serves (``contract.served_modes``): four, or ``main`` alone."""
        return served_modes(tuple(self.modes))

    @property
    def default_mode(self) -> str:
        """The mode of a request that names none: ``merged``, or ``main`` for a single-head artifact."""
        return default_request_mode(tuple(self.modes))

    @property
    def num_classes(self) -> int:
        """Classes the graphs score (the width of every logits output)."""
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written to ``manifest.json`` (inverse of ``from_dict``)."""
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "version": self.version,
            "package_version": self.package_version,
            "precision": self.precision,
            "architecture": self.architecture,
            "class_names": list(self.class_names),
            "input": {
                "name": INPUT_NAME,
                "shape": [None, *self.input_shape],
                "dtype": "float32",
                "range": list(self.input_range),
            },
            "modes": {
                m: {
                    "file": g.file,
                    "sha256": g.sha256,
                    "size": g.size,
                    "opset": g.opset,
                    "outputs": list(g.outputs),
                    "parity": g.parity,
                    **({"external_data": g.external_data} if g.external_data else {}),
                }
                for m, g in self.modes.items()
            },
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Manifest:
        """Parse ``manifest.json``; an unknown schema or a missing key is an ``ArtifactError``, never a KeyError."""
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise ArtifactError(
                f"manifest schema version {doc.get('schema_version')!r} is not supported "
                f"(this dhat-serve reads version {SCHEMA_VERSION}); re-export the artifact"
            )
        try:
            modes = {
                m: GraphEntry(
                    file=g["file"],
                    sha256=g["sha256"],
                    size=int(g["size"]),
                    opset=int(g["opset"]),
                    outputs=tuple(g["outputs"]),
                    parity=g.get("parity", {}),
                    external_data=g.get("external_data"),
                )
                for m, g in doc["modes"].items()
            }
            shape = doc["input"]["shape"][1:]
            return cls(
                schema_version=SCHEMA_VERSION,
                name=doc["name"],
                version=doc["version"],
                package_version=doc["package_version"],
                precision=doc.get("precision", "fp32"),
                architecture=doc["architecture"],
                class_names=tuple(doc["class_names"]),
                input_shape=(int(shape[0]), int(shape[1]), int(shape[2])),
                input_range=(float(doc["input"]["range"][0]), float(doc["input"]["range"][1])),
                modes=modes,
                provenance=doc.get("provenance", {}),
            )
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ArtifactError(f"manifest is malformed: {exc!r}") from None


def verify_file(directory: Path, name: str, sha256: str, size: int | None = None) -> Path:
    """The path of ``name`` if it exists with the manifest's size and sha256, else an ``ArtifactError``."""
    path = directory / name
    if not path.is_file():
        raise ArtifactError(f"{path}: listed in the manifest but missing")
    if size is not None and path.stat().st_size != size:
        raise ArtifactError(
            f"{path}: size {path.stat().st_size} does not match the manifest ({size}); "
            "the file was changed or truncated after export"
        )
    if sha256_file(path) != sha256:
        raise ArtifactError(f"{path}: sha256 does not match the manifest; the file was changed after export")
    return path


def load_manifest(artifact_dir: str | Path, verify: bool = True) -> Manifest:
    """Read ``manifest.json`` and (by default) check every graph's size and sha256."""
    artifact_dir = Path(artifact_dir)
    path = artifact_dir / MANIFEST_FILE
    if not path.is_file():
        raise ArtifactError(f"{artifact_dir}: no {MANIFEST_FILE}; is this an artifact made by `dhat export`?")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    manifest = Manifest.from_dict(doc)
    if tuple(manifest.modes) != SINGLE_HEAD_GRAPHS:
        missing = [m for m in MODES if m not in manifest.modes]
        if missing:
            raise ArtifactError(
                f"{path}: no graph for mode(s) {', '.join(missing)} (a dual-head artifact has "
                f"{', '.join(MODES)}; a single-head one {', '.join(SINGLE_HEAD_GRAPHS)} alone)"
            )
    if verify:
        for entry in manifest.modes.values():
            verify_file(artifact_dir, entry.file, entry.sha256, entry.size)
            if entry.external_data:
                ext = entry.external_data
                verify_file(artifact_dir, ext["file"], ext["sha256"], ext.get("size"))
    return manifest
