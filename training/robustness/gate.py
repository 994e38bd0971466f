"""The rollout gate (``dhat gate``): is a candidate artifact no less robust than the one it would replace?

Both artifacts are evaluated by ``dhat eval``'s own code (``evaluate``) with the same settings on the same test
images, and for every mode both serve and every attack (and the per-image worst case over them) the gate pairs
the two per-image results: the difference candidate - current with Newcombe's hybrid score interval and McNemar's
exact p (``stats.paired_difference``, as within a report). A cell passes when the interval's lower bound is above
``-margin`` (non-inferiority at that margin, in accuracy points); the gate passes only when every cell passes, an
intersection-union rule that needs no multiplicity correction (each cell is its own one-sided 97.5 % test, and the
gate fails if any fails). Two artifacts of different data, classes, input shape or eps are refused, naming which; a
mode the current artifact serves and the candidate lacks is a failing cell (its clients would get 404s).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dhat_serve.manifest import ArtifactError, load_manifest
from training.robustness.compare import correctness, same_images
from training.robustness.evaluate import EvalSettings, EvaluationError, evaluate
from training.robustness.settings import WORST_CASE
from training.robustness.stats import paired_difference, paired_interval
from training.run_dir import RunDir


@dataclass(frozen=True)
class Side:
    """One artifact the gate evaluates: its directory and the run it was exported from."""

    artifact: Path
    run: Path


def threat_model(side: Side, eps: float | None) -> dict[str, Any]:
    """What must match between the two sides: data set, classes, input shape, eps (the asked one or the run's)."""
    try:
        manifest = load_manifest(side.artifact)
    except ArtifactError as exc:
        raise EvaluationError(f"refusing a tampered or incomplete artifact: {exc}") from None
    recipe = RunDir(side.run).load_recipe()
    return {
        "data": recipe.data.dataset,
        "classes": list(manifest.class_names),
        "input shape": list(manifest.input_shape),
        "eps": eps if eps is not None else recipe.validation.attack.eps,
    }


def check_comparable(candidate: Side, current: Side, eps: float | None) -> float:
    """The eps both are evaluated at; an ``EvaluationError`` naming what differs when they are not comparable."""
    a, b = threat_model(candidate, eps), threat_model(current, eps)
    for key in a:
        if a[key] != b[key]:
            raise EvaluationError(
                f"the artifacts differ in {key} ({candidate.artifact}: {a[key]}, {current.artifact}: {b[key]}): "
                "the gate compares artifacts of the same data, classes, input shape and eps"
            )
    return float(a["eps"])


def cells(candidate: dict[str, Any], current: dict[str, Any], margin: float) -> list[dict[str, Any]]:
    """One row per (mode both scored, attack both ran, and the worst case): paired difference and pass/fail."""
    same_images(candidate, current)
    rows = []
    for mode in [m for m in candidate["results"] if m in current["results"]]:
        attacks = [a for a in candidate["results"][mode]["attacks"] if a in current["results"][mode]["attacks"]]
        for attack in [*attacks, WORST_CASE]:
            new, old = correctness(candidate, mode, attack), correctness(current, mode, attack)
            diff = paired_difference(new, old)
            same = paired_interval(int(old.sum()), 0, 0, int((~old).sum()))[0]  # the bound of identical answers
            rows.append(
                {
                    "mode": mode,
                    "attack": attack,
                    "candidate": float(new.mean()),
                    "current": float(old.mean()),
                    **diff,
                    "identical_lower_bound": same,
                    "pass": diff["ci95"][0] > -margin / 100,
                }
            )
    return rows


def missing_modes(candidate: dict[str, Any], current: dict[str, Any]) -> list[dict[str, Any]]:
    """A failing row for each mode the current artifact serves and the candidate does not: rolling it out would turn
    that mode's requests into 404s (a single-head candidate replacing a dual head loses merged and all)."""
    return [
        {"mode": mode, "attack": "(mode missing in the candidate)", "missing": True, "pass": False}
        for mode in current["results"]
        if mode not in candidate["results"]
    ]


def run_gate(candidate: Side, current: Side, settings: EvalSettings, margin: float, out: Path) -> dict[str, Any]:
    """Evaluate both sides (reports in ``out/candidate`` and ``out/current``), pair them, write ``gate.json`` and
    ``gate.md``; returns the gate's document (``passed``, the failing cells, every cell)."""
    if margin < 0:
        raise EvaluationError(f"--margin must be >= 0 accuracy points, got {margin}")
    eps = check_comparable(candidate, current, settings.eps)
    settings = replace(settings, eps=eps, transfer=False, curve=(), corruptions=False, primary="none")
    reports = {}
    for name, side in (("candidate", candidate), ("current", current)):
        reports[name] = evaluate(side.artifact, side.run, settings, out / name)
    new, old = reports["candidate"], reports["current"]
    rows = cells(new, old, margin) + missing_modes(new, old)
    doc = {
        "passed": all(r["pass"] for r in rows),
        "failed": [f"{r['mode']} / {r['attack']}" for r in rows if not r["pass"]],
        "margin_points": margin,
        "smallest_passable_margin_points": max(
            (-100 * r["identical_lower_bound"] for r in rows if "missing" not in r), default=0.0
        ),
        "rule": "pass when the 95 % paired interval's lower bound of candidate - current is above -margin, "
        "for every mode and attack",
        "candidate": {**reports["candidate"]["artifact"], "report": str(out / "candidate" / "report.json")},
        "current": {**reports["current"]["artifact"], "report": str(out / "current" / "report.json")},
        "data": reports["candidate"]["data"],
        "eps": eps,
        "cells": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate.json").write_text(json.dumps(doc, indent=2))
    (out / "gate.md").write_text(markdown(doc))
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """``gate.md``: the verdict, then one row per mode and attack."""
    c, k = doc["candidate"], doc["current"]
    lines = [
        f"# Rollout gate: {c['name']} {c['version']} against {k['name']} {k['version']}",
        "",
        f"**{'PASS' if doc['passed'] else 'FAIL'}** at a margin of {doc['margin_points']:g} points "
        f"({doc['data']['dataset']}, n = {doc['data']['n']}, L-inf eps = {doc['eps']:.4g}): {doc['rule']}."
        + (f" Failed: {', '.join(doc['failed'])}." if doc["failed"] else ""),
        "",
        f"On these {doc['data']['n']} images even answers identical to the current artifact's pass only at a "
        f"margin above {doc['smallest_passable_margin_points']:.2f} points (the interval's own width): a smaller "
        "margin needs more images (--n).",
        "",
        "| mode | attack | candidate | current | difference (points) | 95 % interval | McNemar p | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["cells"]:
        if r.get("missing"):
            lines.append(f"| {r['mode']} | {r['attack']} | - | served | - | - | - | FAIL |")
            continue
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['mode']} | {r['attack']} | {100 * r['candidate']:.2f} % | {100 * r['current']:.2f} % | "
            f"{100 * r['difference']:+.2f} | [{100 * lo:+.2f}, {100 * hi:+.2f}] | {r['mcnemar_p']:.3g} | "
            f"{'pass' if r['pass'] else 'FAIL'} |"
        )
    return "\n".join(lines) + "\n"
