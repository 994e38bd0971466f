"""``dhat frontier``'s outputs: ``frontier.json`` (every point, its front and the deployments), ``frontier.md`` and
``frontier.png`` (clean against robust accuracy with 95 % whiskers, the Pareto front drawn, points labelled
model:mode). The points come from ``training.robustness.frontier``.

A deployment is what a user runs: one artifact (its modes are the switch it offers, at the bytes of all its
graphs), or a pair of single models served side by side (``--pair natural+trades``: both sets of bytes). Its
switch is the step from its most accurate point to its most robust one: what a request gains and pays by asking
for the robust answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

from dhat_serve.contract import MODES
from training.robustness.frontier import (
    FrontierError,
    axis_name,
    chosen,
    dominates,
    find_reports,
    mode_point,
    num,
    panels,
    pareto,
    robust_attack,
)
from training.robustness.frontier_verdict import panel_verdict, verdict_lines

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def build_frontier(paths: list[Path], pairs: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"sources", "pairs", "panels": [{"dataset", "eps", "robust_attack", "points", "front", "deployments",
    "verdict"}, ...]}`` (``verdict``: ``training.robustness.frontier_verdict``); ``sources`` and ``pairs`` are what
    was asked, so the document can be drawn again from them."""
    out: list[dict[str, Any]] = []
    named = {m for p in pairs for m in split_pair(p)}
    seen: set[str] = set()
    for (dataset, eps), group in sorted(panels(find_reports(paths)).items()):
        attack = robust_attack(group)
        points = []
        for model, versions in sorted(chosen(group, attack).items()):
            runs = list(versions.values())
            modes = [m for m in MODES if m in runs[0].report["results"]]
            points += [p for mode in modes if (p := mode_point(model, mode, runs, attack)) is not None]
        front = pareto(points)
        for p in points:
            p["on_front"] = p["label"] in front
            p["dominated_by"] = [q["label"] for q in points if dominates(q, p)]
        models = sorted({p["model"] for p in points})
        seen |= set(models)
        deployments = [deployment([m], points) for m in models]
        deployments += [
            deployment(list(split_pair(pair)), points) for pair in pairs if set(split_pair(pair)) <= set(models)
        ]
        panel = {
            "dataset": dataset,
            "eps": eps,
            "robust_attack": attack,
            "points": points,
            "front": front,
            "deployments": deployments,
        }
        out.append(panel | {"verdict": panel_verdict(panel)})
    if missing := named - seen:
        raise FrontierError(
            f"--pair names {', '.join(sorted(missing))}, which no report measures; models with "
            f"reports: {', '.join(sorted(seen))}"
        )
    return {"sources": [str(p) for p in paths], "pairs": list(pairs), "panels": out}


def split_pair(pair: str) -> tuple[str, str]:
    """``"A+B"`` -> ``("A", "B")``: the two models of a ``--pair``, or an error that shows how to write one."""
    parts = tuple(p.strip() for p in pair.split("+"))
    if len(parts) != 2 or not all(parts):
        raise FrontierError(
            f"--pair {pair!r}: write two models joined by '+', e.g. fashion-mnist-cpu-natural+fashion-mnist-cpu-trades"
        )
    return parts  # type: ignore[return-value]


def deployment(models: list[str], points: list[dict[str, Any]]) -> dict[str, Any]:
    """One artifact or a pair: the points it offers, its bytes and the switch from most accurate to most robust."""
    own = [p for p in points if p["model"] in models]
    sizes = {p["model"]: p["deployment_bytes"] for p in own}
    total = None if None in sizes.values() else sum(sizes.values())
    accurate = max(own, key=lambda p: (p["clean"], p["robust"]))
    robust = max(own, key=lambda p: (p["robust"], p["clean"]))
    lat = (
        None
        if None in (accurate["latency_b1_ms"], robust["latency_b1_ms"])
        else robust["latency_b1_ms"] - accurate["latency_b1_ms"]
    )
    return {
        "name": " + ".join(models),
        "models": models,
        "points": [p["label"] for p in own],
        "bytes": total,
        "switch": {
            "from": accurate["label"],
            "to": robust["label"],
            "clean_points": 100 * (robust["clean"] - accurate["clean"]),
            "robust_points": 100 * (robust["robust"] - accurate["robust"]),
            "latency_b1_ms": lat,
        },
    }


def markdown(doc: dict[str, Any]) -> str:
    """``frontier.md``: per panel, every point with its intervals, front membership and costs, then the deployments."""
    lines = [
        "# Accuracy-robustness frontier",
        "",
        "Each point is one model:mode (the mean over its training runs with an across-seed Student-t interval, "
        "or one run's Wilson interval), scored by ONNX Runtime on the exported graphs. Front: no other point is "
        "at least as accurate and as robust. Costs from the largest report that recorded them (ONNX Runtime "
        "CPU provider; '-': the report predates cost recording).",
        "",
    ]
    verdict = verdict_lines(doc)
    return "\n".join(lines + panel_lines(doc) + (["## Verdict", "", *verdict] if verdict else []))


def panel_lines(doc: dict[str, Any]) -> list[str]:
    """Per panel: every point with its intervals, front membership and costs, then the deployments and switches."""
    lines: list[str] = []
    for panel in doc["panels"]:
        lines += [
            f"## {panel['dataset']}, L-inf eps = {panel['eps']:g}; robust axis: {axis_name(panel['robust_attack'])}",
            "",
            "| point | runs | n | clean % | robust % | on front | dominated by | parameters | ONNX bytes | "
            "batch 1 ms | batch 32 ms/image |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in panel["points"]:
            lines.append(
                f"| {p['label']} | {p['runs']} | {'/'.join(map(str, p['n']))} | {cell(p, 'clean')} | "
                f"{cell(p, 'robust')} | {'yes' if p['on_front'] else 'no'} | {', '.join(p['dominated_by']) or '-'} | "
                f"{num(p['parameters'])} | {num(p['onnx_bytes'])} | {num(p['latency_b1_ms'], '.3f')} | "
                f"{num(p['latency_b32_ms_per_image'], '.3f')} |"
            )
        lines += [
            "",
            "| deployment | bytes (all graphs) | switch | clean points | robust points | batch-1 ms |",
            "|---|---|---|---|---|---|",
        ]
        for d in panel["deployments"]:
            s = d["switch"]
            step = (
                f"{s['from']} is both the most accurate and the most robust: no switch"
                if s["from"] == s["to"]
                else f"{s['from']} → {s['to']}"
            )
            lines.append(
                f"| {d['name']} | {num(d['bytes'])} | {step} | {s['clean_points']:+.2f} | {s['robust_points']:+.2f} | "
                f"{num(s['latency_b1_ms'], '+.3f')} |"
            )
        lines.append("")
    return lines


def cell(p: dict[str, Any], axis: str) -> str:
    """An accuracy in % with its 95 % interval."""
    lo, hi = p[f"{axis}_ci95"] or (None, None)
    ci = "" if lo is None else f" [{100 * lo:.2f}, {100 * hi:.2f}]"
    return f"{100 * p[axis]:.2f}{ci}"


def plot(doc: dict[str, Any], path: Path) -> None:
    """One panel per data set and eps: whiskers, the front as a dashed step, every point labelled."""
    count = len(doc["panels"])
    fig, axes = plt.subplots(1, count, figsize=(6.4 * count, 5.2), squeeze=False)
    for ax, panel in zip(axes[0], doc["panels"], strict=True):
        for p in panel["points"]:
            x, y = 100 * p["robust"], 100 * p["clean"]
            xerr = [[x - 100 * p["robust_ci95"][0]], [100 * p["robust_ci95"][1] - x]] if p["robust_ci95"] else None
            yerr = [[y - 100 * p["clean_ci95"][0]], [100 * p["clean_ci95"][1] - y]] if p["clean_ci95"] else None
            ax.errorbar(
                x,
                y,
                xerr=xerr,
                yerr=yerr,
                fmt="o" if p["on_front"] else "s",
                ms=5,
                capsize=2,
                color="C3" if p["on_front"] else "C0",
                alpha=0.9,
            )
            ax.annotate(p["label"], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        front = [p for label in panel["front"] for p in panel["points"] if p["label"] == label]
        if front:
            ax.step(
                [100 * p["robust"] for p in front],
                [100 * p["clean"] for p in front],
                "--",
                where="pre",
                color="C3",
                lw=1,
                label="Pareto front",
            )
            ax.legend(fontsize=7)
        ax.set_xlabel(f"robust accuracy, {axis_name(panel['robust_attack'])} (%)")
        ax.set_ylabel("clean accuracy (%)")
        ax.set_title(f"{panel['dataset']}, eps {panel['eps']:g}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_frontier(paths: list[Path], out: Path, pairs: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write ``frontier.{json,md,png}`` into ``out`` and return the document."""
    doc = build_frontier(paths, pairs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontier.json").write_text(json.dumps(doc, indent=2))
    (out / "frontier.md").write_text(markdown(doc))
    plot(doc, out / "frontier.png")
    return doc
