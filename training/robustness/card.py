"""``dhat eval ... --card``: the robustness card of an artifact, built from a ``dhat eval`` report.

The card's format, its seal and its check at start are ``dhat_serve.card``'s; this module only turns one
``report.json`` (and the bytes it was written as: the card records their sha256) into that document. Every
number is copied from the report, never recomputed, so a card says exactly what its report says.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dhat_serve.card import CARD_FILE, CARD_SCHEMA, seal
from dhat_serve.manifest import Manifest, load_manifest
from training.robustness.settings import WORST_CASE
from training.robustness.suite import PGD_NAME

STEPS_NAME = re.compile(r"^(margin|system|evade|joint|agree)(\d+)?(?:x(\d+))?$")
DEFAULT_STEPS = {"margin": 100, "system": 100, "evade": 100, "joint": 20, "agree": 20}
FIXED = {
    "clean": {"method": "no attack"},
    "apgd-ce": {"method": "APGD, cross-entropy (pyautoattack)", "steps": 100, "restarts": 1},
    "apgd-dlr": {"method": "APGD, DLR loss (pyautoattack)", "steps": 100, "restarts": 1},
    "apgd-dlr-t": {"method": "APGD-T, targeted DLR (pyautoattack)", "steps": 100, "restarts": 1},
    "autoattack": {"method": "AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square 5,000 queries (pyautoattack)"},
}


def attack_budget(name: str, square_queries: int) -> dict[str, Any]:
    """What attack ``name`` was: its method and its steps, restarts or queries, read from its name (the names of
    ``training.robustness.suite``)."""
    if name in FIXED:
        return dict(FIXED[name])
    if name == "square":
        return {"method": "Square, score-based, on the ONNX graph (pyautoattack)", "queries": square_queries}
    if name == "transfer":
        return {"method": "PGD-20 crafted on another mode's twin, scored on this graph"}
    pgd = PGD_NAME.match(name)
    if pgd:
        return {
            "method": "PGD, cross-entropy, last iterate",
            "steps": int(pgd.group(1)),
            "restarts": int(pgd.group(2) or 1),
        }
    family = STEPS_NAME.match(name)
    if family:
        kind = family.group(1)
        return {
            "method": f"{kind}: APGD on logit-margin hinges, best iterate"
            if kind in ("margin", "system", "evade")
            else f"{kind}: PGD on cross-entropies, last iterate",
            "steps": int(family.group(2) or DEFAULT_STEPS[kind]),
            "restarts": int(family.group(3) or 1),
        }
    return {"method": name}


def percent(accuracy: float) -> str:
    """An accuracy as RobustBench writes it: percent, two decimals, a string."""
    return f"{100 * accuracy:.2f}"


def mode_entry(report: dict[str, Any], mode: str, manifest: Manifest) -> dict[str, Any]:
    """One mode's card: each attack's accuracy with n and interval, the worst case, RobustBench's fields."""
    row, n = report["results"][mode]["attacks"], report["data"]["n"]
    attacks = [
        {
            "attack": name,
            "accuracy": r["graph"],
            "ci95": r.get("graph_ci95"),
            "n": n,
            **attack_budget(name, report.get("square_queries", 0)),
        }
        for name, r in row.items()
    ]
    worst = report.get("worst_case", {}).get(mode)
    entry: dict[str, Any] = {"attacks": attacks}
    if worst:  # the report's per-image worst case over every attack it ran (the strong suite's headline)
        entry["worst_case"] = {
            "accuracy": worst["graph"],
            "ci95": worst["graph_ci95"],
            "n": worst["n"],
            "over": worst["over"],
        }
    entry["robustbench"] = {
        "dataset": report["data"]["dataset"],
        "threat_model": "Linf",
        "eps": report["eps"],
        "clean_acc": percent(row["clean"]["graph"]) if "clean" in row else None,
        "autoattack_acc": percent(row["autoattack"]["graph"]) if "autoattack" in row else None,
        "number_forward_passes": 1,
        "architecture": manifest.architecture.get("arch", manifest.architecture.get("name")),
    }
    return entry


def machine() -> dict[str, Any]:
    """Where the card was written (the evaluation's own device is in the report)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def build_card(report: dict[str, Any], report_bytes: bytes, manifest: Manifest) -> dict[str, Any]:
    """The sealed card of ``report`` (the bytes of its ``report.json``) for ``manifest``'s graphs."""
    measured = report["artifact"]["hashes"]
    doc = {
        "schema": CARD_SCHEMA,
        "artifact": {"name": manifest.name, "version": manifest.version},
        "graphs": {m: measured[m] for m in report["results"]},
        "threat_model": "Linf",
        "eps": report["eps"],
        "data": {k: report["data"].get(k) for k in ("dataset", "split", "n", "labels_sha256")},
        "report": {"sha256": hashlib.sha256(report_bytes).hexdigest(), "attacks": report["attacks"]},
        "evaluated_on": {"device": report.get("device"), "providers": report.get("providers"), **machine()},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": report.get("versions", {}),
        "worst_case_over": WORST_CASE if report.get("worst_case") else None,
        "modes": {mode: mode_entry(report, mode, manifest) for mode in report["results"]},
    }
    return seal(doc)


def write_card(artifact_dir: Path, report_path: Path) -> Path:
    """Write ``card.json`` into ``artifact_dir`` (its graphs verified again) from ``report_path``, a ``report.json``
    that measured those graphs (else a ``ValueError`` naming both)."""
    manifest = load_manifest(artifact_dir)
    data = report_path.read_bytes()
    report = json.loads(data)
    mismatch = [
        m for m, h in report["artifact"]["hashes"].items() if m in manifest.modes and manifest.modes[m].sha256 != h
    ]
    if mismatch:
        raise ValueError(f"{report_path} measured other graphs than {artifact_dir} ({', '.join(mismatch)})")
    path = artifact_dir / CARD_FILE
    path.write_text(json.dumps(build_card(report, data, manifest), indent=2))
    return path
