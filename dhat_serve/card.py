"""The robustness card: how robust each mode's answer is, bound to the graphs it was measured on.

``dhat eval ... --card`` (``training.robustness.card``) writes ``card.json`` into the artifact directory. Per mode
it holds every attack's accuracy with n and its 95 % interval, eps, norm, steps / restarts / queries, the suite's
per-image worst case when the strong suite ran, and RobustBench's model-info fields where they fit (``clean_acc``,
``autoattack_acc``, ``eps``, ``dataset``, ``threat_model``, ``number_forward_passes``); beside them the data split
and its label digest, the report's sha256, the date, the machine, the tool versions and the sha256 of every graph
it measured.

A card belongs to those graphs. ``load_card`` refuses, naming ``card.json`` and the fix, a card whose graph hashes
are not the artifact's (a re-export, or a card copied from another artifact) and a card whose ``digest`` does not
match its content (a hand edit: the digest is sha256 of the card's canonical JSON without it, so an edit that does
not recompute it is caught; it is a seal against mistakes, not a signature against a forger with write access).
An artifact without a card serves and says "not evaluated" (``NOT_EVALUATED``). The service shows a mode's card on
``/info``, OIP model metadata (HTTP ``parameters``, gRPC trailing metadata), Triton's model config ``parameters``
and Prometheus (``dhat_robust_accuracy{mode, attack}``); ``dhat info`` prints it. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dhat_serve.contract import ALL, LOGITS, REQUEST_OUTPUTS
from dhat_serve.manifest import ArtifactError, Manifest

CARD_FILE = "card.json"
CARD_SCHEMA = "dhat-card/1"
WORST_CASE = "worst-case"
NOT_EVALUATED = {"evaluated": False, "note": "not evaluated: no card.json (write one with `dhat eval ... --card`)"}


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes the digest is taken over: sorted keys, no spaces, without the ``digest`` field itself."""
    body = {k: v for k, v in doc.items() if k != "digest"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def seal(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with its ``digest`` (sha256 of ``canonical(doc)``): what ``training.robustness.card`` writes."""
    return {**doc, "digest": hashlib.sha256(canonical(doc)).hexdigest()}


@dataclass(frozen=True)
class Card:
    """A verified ``card.json``: ``doc`` is the whole document, ``modes`` its per-mode entries."""

    doc: dict[str, Any]

    @property
    def modes(self) -> dict[str, dict[str, Any]]:
        """``{mode: entry}`` for the graphs' modes it measured (main, second, merged)."""
        return self.doc["modes"]

    def summary(self) -> dict[str, Any]:
        """The card without its per-mode entries: what was measured, where, when, on which data."""
        return {"evaluated": True, **{k: v for k, v in self.doc.items() if k != "modes"}}

    def of(self, request_mode: str) -> dict[str, Any]:
        """The card of one request mode: its graph's entry (``all``: merged's, its ``logits``, with the two heads'
        entries under ``heads`` by output name), or ``{"evaluated": False}`` for a mode the report did not score."""
        graph = REQUEST_OUTPUTS[request_mode][LOGITS]
        entry = self.modes.get(graph)
        if entry is None:
            return {"evaluated": False, "note": f"the card's report did not score {graph}"}
        out = {"evaluated": True, **entry}
        if request_mode == ALL:
            out["heads"] = {name: self.modes.get(m) for name, m in REQUEST_OUTPUTS[ALL].items() if name != LOGITS}
        return out

    def brief(self, request_mode: str) -> dict[str, Any]:
        """A short card for places with little room (gRPC metadata, Triton's config parameters): eps, n, each
        attack's accuracy, the worst case and the report's sha256 (``/info`` and HTTP metadata carry the whole)."""
        entry = self.of(request_mode)
        if not entry["evaluated"]:
            return {"evaluated": False}
        worst = entry.get("worst_case")
        return {
            "evaluated": True,
            "eps": self.doc["eps"],
            "n": self.doc["data"]["n"],
            "accuracy": {a["attack"]: a["accuracy"] for a in entry["attacks"]},
            "worst_case": worst["accuracy"] if worst else None,
            "report_sha256": self.doc["report"]["sha256"],
        }

    def gauges(self) -> list[tuple[str, str, float]]:
        """``(mode, attack, accuracy)`` for every measured number, the worst case among them: Prometheus's view."""
        rows = []
        for mode, entry in self.modes.items():
            rows += [(mode, a["attack"], a["accuracy"]) for a in entry["attacks"]]
            if entry.get("worst_case"):
                rows.append((mode, WORST_CASE, entry["worst_case"]["accuracy"]))
        return rows


def card_view(card: Card | None, request_mode: str) -> dict[str, Any]:
    """What every surface shows for ``request_mode``: its card, or ``NOT_EVALUATED``."""
    return card.of(request_mode) if card is not None else dict(NOT_EVALUATED)


def card_brief(card: Card | None, request_mode: str) -> dict[str, Any]:
    """``Card.brief`` of ``request_mode``, or ``{"evaluated": False}`` for an artifact without a card."""
    return card.brief(request_mode) if card is not None else {"evaluated": False}


def read_card(path: Path) -> dict[str, Any]:
    """``card.json`` parsed, or an ``ArtifactError`` naming it (not JSON, not a card of this schema)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(
            f"{path}: not a readable JSON card ({exc}); rewrite it with `dhat eval ... --card`"
        ) from None
    if not isinstance(doc, dict) or doc.get("schema") != CARD_SCHEMA or not well_formed(doc):
        raise ArtifactError(
            f"{path}: not a robustness card of schema {CARD_SCHEMA}; rewrite it with `dhat eval ... --card`"
        )
    return doc


def well_formed(doc: dict[str, Any]) -> bool:
    """Whether ``doc`` has every field a surface reads, of the right type (a sealed card with a field missing or
    mistyped would otherwise fail at a request, not at start)."""
    number = (int, float)
    try:
        rows = [a for entry in doc["modes"].values() for a in entry["attacks"]]
        worst = [e["worst_case"] for e in doc["modes"].values() if e.get("worst_case") is not None]
        return (
            isinstance(doc["graphs"], dict)
            and all(isinstance(h, str) for h in doc["graphs"].values())
            and isinstance(doc["eps"], number)
            and isinstance(doc["data"]["n"], int)
            and isinstance(doc["report"]["sha256"], str)
            and all(isinstance(a["attack"], str) and isinstance(a["accuracy"], number) for a in rows)
            and all(isinstance(w["accuracy"], number) for w in worst)
        )
    except (KeyError, TypeError, AttributeError):
        return False


def load_card(artifact_dir: str | Path, manifest: Manifest) -> Card | None:
    """The artifact's verified card, None when it has none; an ``ArtifactError`` naming ``card.json`` and the fix
    when its digest does not match its content or a graph it measured is not this artifact's."""
    path = Path(artifact_dir) / CARD_FILE
    if not path.exists():
        return None
    doc = read_card(path)
    fix = (
        f"re-evaluate with `dhat eval {artifact_dir} --run RUN --card` (or delete {path} to serve it as not evaluated)"
    )
    if doc.get("digest") != hashlib.sha256(canonical(doc)).hexdigest():
        raise ArtifactError(f"{path}: its digest does not match its content (the card was edited); {fix}")
    graphs = doc.get("graphs") or {}
    stale = [m for m in doc["modes"] if m not in manifest.modes or graphs.get(m) != manifest.modes[m].sha256]
    if stale or not graphs:
        raise ArtifactError(
            f"{path}: measured other graphs than this artifact's ({', '.join(stale) or 'no graph hashes'}: "
            f"sha256 differs from manifest.json); {fix}"
        )
    return Card(doc)
