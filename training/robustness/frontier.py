"""``dhat frontier``: every model and mode as a point (clean accuracy, robust accuracy), read from eval reports.

A user deciding between one dual-head deployment (a switch between modes) and the models they would deploy
instead reads one picture: which points nobody beats on both axes (the Pareto front), and what each deployment
costs. Everything comes from committed ``report.json`` files (costs included: ``training.robustness.cost``), so
a fresh clone draws it without an artifact.

Grouping. Points are drawn per panel: one data set and eps (a digits point says nothing against a Fashion-MNIST
one). A model is a recipe (``report['run']['recipe']``); each distinct artifact (its version hash) is one training
run. The robust axis is the worst case of the strong suite when every training run of the panel has a report with
AutoAttack in it, else PGD-20 (the strongest attack the reports share). With several runs of a model, a point is
their mean and its whiskers the across-seed Student-t interval; with one run, its report's Wilson interval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.robustness.seeds import t_interval
from training.robustness.settings import WORST_CASE

STRONG_MARK = "autoattack"  # a report whose attacks include it ran the strong suite (or AutoAttack at least)
FALLBACK = "pgd20"


class FrontierError(ValueError):
    """A path with no report in it, or a pair naming a model no report has."""


@dataclass(frozen=True)
class Run:
    """One report of one trained artifact: what the frontier reads of it."""

    path: Path
    model: str
    version: str
    dataset: str
    eps: float
    n: int
    attacks: tuple[str, ...]
    report: dict[str, Any] = field(repr=False, compare=False)

    def strong(self) -> bool:
        """Whether this report ran AutoAttack and has a per-image worst case (the strong suite, or more)."""
        return STRONG_MARK in self.attacks and bool(self.report.get("worst_case"))

    def accuracy(self, mode: str, attack: str) -> tuple[float, list[float]] | None:
        """(accuracy, Wilson 95 % interval) of ``mode`` under ``attack`` (or the worst case); None if not run."""
        if attack == WORST_CASE:
            row = (self.report.get("worst_case") or {}).get(mode)
        else:
            row = self.report["results"].get(mode, {}).get("attacks", {}).get(attack)
        return None if row is None else (row["graph"], row["graph_ci95"])


def find_reports(paths: list[Path]) -> list[Run]:
    """Every eval report under ``paths`` (files, or folders searched for ``*report.json``)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*report.json") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise FrontierError(f"{path}: no such file or folder; give eval reports (report.json) or folders of them")
    runs = [run for f in files if (run := read_run(f)) is not None]
    if not runs:
        raise FrontierError(f"no eval report (a report.json written by `dhat eval`) under {', '.join(map(str, paths))}")
    return runs


def read_run(path: Path) -> Run | None:
    """A ``dhat eval`` report as a Run; None for other JSON (summaries, walls) that share the name pattern."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FrontierError(f"{path}: not readable JSON ({e})") from e
    if not isinstance(doc, dict) or not {"results", "artifact", "run", "data", "eps"} <= doc.keys():
        return None
    return Run(
        path,
        doc["run"]["recipe"],
        doc["artifact"]["version"],
        doc["data"]["dataset"],
        float(doc["eps"]),
        int(doc["data"]["n"]),
        tuple(doc.get("attacks", ())),
        doc,
    )


def panels(runs: list[Run]) -> dict[tuple[str, float], list[Run]]:
    """Runs grouped by (data set, eps)."""
    out: dict[tuple[str, float], list[Run]] = {}
    for run in runs:
        out.setdefault((run.dataset, run.eps), []).append(run)
    return out


def robust_attack(runs: list[Run]) -> str:
    """The worst case when every training run (artifact version) of the panel has a strong-suite report, else PGD-20.

    Every run, not every model: a point is the mean over its model's runs, so a worst case taken over only the seeds
    that happen to have the suite would drop the others silently and set one seed's point against five seeds'."""
    runs_seen = {(r.model, r.version) for r in runs}
    strong = {(r.model, r.version) for r in runs if r.strong()}
    return WORST_CASE if runs_seen and strong == runs_seen else FALLBACK


def chosen(runs: list[Run], attack: str) -> dict[str, dict[str, Run]]:
    """model -> artifact version -> the report that measures ``attack`` on the most images."""
    out: dict[str, dict[str, Run]] = {}
    for run in runs:
        if not (run.strong() if attack == WORST_CASE else attack in run.attacks):
            continue
        best = out.setdefault(run.model, {}).get(run.version)
        if best is None or run.n > best.n:
            out[run.model][run.version] = run
    return out


def mode_point(model: str, mode: str, runs: list[Run], attack: str) -> dict[str, Any] | None:
    """One model:mode point over its training runs (mean and t-interval, or one run's Wilson interval)."""
    clean = [a for r in runs if (a := r.accuracy(mode, "clean")) is not None]
    robust = [a for r in runs if (a := r.accuracy(mode, attack)) is not None]
    if not clean or len(clean) != len(robust):
        return None
    point = {
        "label": f"{model}:{mode}",
        "model": model,
        "mode": mode,
        "runs": len(runs),
        "robust_attack": attack,
        "n": sorted({r.n for r in runs}),
        "reports": [str(r.path) for r in runs],
        "graphs": sorted({h for r in runs if (h := (r.report["artifact"].get("hashes") or {}).get(mode))}),
    }
    for axis, values in (("clean", clean), ("robust", robust)):
        point[f"{axis}_runs"] = [v[0] for v in values]  # per training run: the verdict's differences need them
        if len(values) == 1:
            point[axis], point[f"{axis}_ci95"] = values[0][0], list(values[0][1])
            point[f"{axis}_interval"] = "Wilson (one run)"
        else:
            t = t_interval([v[0] for v in values])
            point[axis], point[f"{axis}_ci95"] = t["mean"], t["ci95"]
            point[f"{axis}_interval"] = f"Student t over {len(values)} runs"
    point.update(mode_cost(runs, mode))
    return point


def mode_cost(runs: list[Run], mode: str) -> dict[str, Any]:
    """Parameters, graph bytes and latency of a mode, and the bytes of the whole artifact, from the first training
    run's report of the largest n (seed 0's: a seed's report is named after it, so it sorts first); None where no
    report recorded them (reports written before costs were).

    One fixed run, not the newest: a later seed may be timed on another machine, and latencies of different
    machines side by side would mislead. ``measured_on`` says where each was timed."""
    for run in sorted(runs, key=lambda r: (-r.n, str(r.path))):  # the same pick on every clone
        cost = run.report.get("cost")
        if cost and mode in cost.get("modes", {}):
            row = cost["modes"][mode]
            return {
                "parameters": row["parameters"],
                "onnx_bytes": row["onnx_bytes"],
                "latency_b1_ms": row["latency"]["1"]["request_ms"],
                "latency_b32_ms_per_image": row["latency"]["32"]["per_image_ms"],
                "deployment_bytes": cost["artifact_bytes"],
                "measured_on": cost["machine"],
            }
    return {
        "parameters": None,
        "onnx_bytes": None,
        "latency_b1_ms": None,
        "latency_b32_ms_per_image": None,
        "deployment_bytes": None,
        "measured_on": None,
    }


def pareto(points: list[dict[str, Any]]) -> list[str]:
    """Labels of the points no other point beats on both axes (>= on both, > on one), by clean accuracy."""
    front = [p for p in points if not any(dominates(q, p) for q in points)]
    return [p["label"] for p in sorted(front, key=lambda p: (-p["clean"], p["robust"]))]


def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """``a`` is at least as accurate and as robust as ``b``, and better on one."""
    return (
        a["clean"] >= b["clean"]
        and a["robust"] >= b["robust"]
        and (a["clean"] > b["clean"] or a["robust"] > b["robust"])
    )


def axis_name(attack: str) -> str:
    """The robust axis as a reader names it."""
    return "worst case of the strong suite" if attack == WORST_CASE else "PGD-20"


def num(v: float | None, fmt: str = ",") -> str:
    """A cost, or '-' where the report did not record it."""
    return "-" if v is None else format(v, fmt)
