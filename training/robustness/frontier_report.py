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
from collections import Counter
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
from training.robustness.frontier_strong import strong_lines, strong_so_far
from training.robustness.frontier_verdict import panel_verdict, verdict_lines

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def build_frontier(paths: list[Path], pairs: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"sources", "pairs", "panels": [{"dataset", "eps", "robust_attack", "points", "front", "deployments",
    "strong_so_far", "verdict"}, ...]}`` (``verdict``: ``training.robustness.frontier_verdict``; ``strong_so_far``:
    ``training.robustness.frontier_strong``); ``sources`` and ``pairs`` are what
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
            "strong_so_far": strong_so_far(group, attack),
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
        "at least as accurate and as robust. Costs from each model's first training run's report of the most "
        "images (ONNX Runtime CPU provider; '-': the report predates cost recording), timed on "
        f"{machines(doc)}.",
        "",
    ]
    verdict = verdict_lines(doc)
    return "\n".join(lines + panel_lines(doc) + (["## Verdict", "", *verdict] if verdict else []))


def machines(doc: dict[str, Any]) -> str:
    """Where the latencies were timed: each machine with its count of points (several means: compare with care)."""
    seen = Counter(p["measured_on"] for panel in doc["panels"] for p in panel["points"] if p["measured_on"])
    if not seen:
        return "no machine recorded"
    return "; ".join(f"{m} ({k} point{'s' * (k > 1)})" for m, k in sorted(seen.items()))


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
        lines += ["", *strong_lines(panel)]
    return lines


def cell(p: dict[str, Any], axis: str) -> str:
    """An accuracy in % with its 95 % interval."""
    lo, hi = p[f"{axis}_ci95"] or (None, None)
    ci = "" if lo is None else f" [{100 * lo:.2f}, {100 * hi:.2f}]"
    return f"{100 * p[axis]:.2f}{ci}"


MARKERS = dict(zip(MODES, "os^", strict=True))  # main o, second s, merged ^
ZOOM = 0.15  # the right-hand panel shows the points within 15 robust points of the most robust one


def plot(doc: dict[str, Any], path: Path) -> None:
    """Per data set and eps, two panels: every point, and a zoom on the robust ones (where the designs and the robust
    single models crowd together). Colour is the model, the marker its mode (main o, second s, merged ^), whiskers
    the 95 % intervals, the front a dashed step with its points edged in black; the legend names every point."""
    fig, axes = plt.subplots(len(doc["panels"]), 2, figsize=(13, 5.4 * len(doc["panels"])), squeeze=False)
    for (whole, zoom), panel in zip(axes, doc["panels"], strict=True):
        models = sorted({p["model"] for p in panel["points"]})
        colour = {m: f"C{i % 10}" for i, m in enumerate(models)}
        draw(whole, panel, panel["points"], colour)
        fit(whole, panel["points"], pad=5.0)
        top = max(p["robust"] for p in panel["points"])
        near = [p for p in panel["points"] if p["robust"] >= top - ZOOM]
        if len(near) < len(panel["points"]):
            draw(zoom, panel, near, colour)
            fit(zoom, near, pad=2.0)
            zoom.set_title(
                f"zoom: within {100 * ZOOM:.0f} robust points of the most robust (whiskers may run off)", fontsize=9
            )
        else:
            zoom.axis("off")
        whole.set_title(f"{panel['dataset']}, eps {panel['eps']:g}", fontsize=9)
        handles, labels = whole.get_legend_handles_labels()
        zoom.legend(handles, labels, fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def fit(ax: Any, points: list[dict[str, Any]], pad: float) -> None:
    """Axes around the points (in %, ``pad`` either side, never past 0 or 100), not around their whiskers: a
    two-seed Student-t interval (t = 12.7) would otherwise stretch the panel until the points crowd into a corner."""
    for axis, setter in (("robust", ax.set_xlim), ("clean", ax.set_ylim)):
        values = [100 * p[axis] for p in points]
        setter(max(min(values) - pad, -1.0), min(max(values) + pad, 101.0))


def draw(ax: Any, panel: dict[str, Any], points: list[dict[str, Any]], colour: dict[str, str]) -> None:
    """The given points of one panel with their whiskers, and the panel's front through those of them on it."""
    for p in points:
        x, y = 100 * p["robust"], 100 * p["clean"]
        xerr = [[x - 100 * p["robust_ci95"][0]], [100 * p["robust_ci95"][1] - x]] if p["robust_ci95"] else None
        yerr = [[y - 100 * p["clean_ci95"][0]], [100 * p["clean_ci95"][1] - y]] if p["clean_ci95"] else None
        ax.errorbar(
            x,
            y,
            xerr=xerr,
            yerr=yerr,
            fmt=MARKERS.get(p["mode"], "o"),
            ms=6,
            capsize=2,
            color=colour[p["model"]],
            mec="black" if p["on_front"] else colour[p["model"]],
            mew=1.2,
            alpha=0.9,
            label=p["label"] + (" (front)" if p["on_front"] else ""),
        )
    front = [p for label in panel["front"] for p in points if p["label"] == label]
    if front:
        xs, ys = [100 * p["robust"] for p in front], [100 * p["clean"] for p in front]
        ax.step(xs, ys, "--", where="pre", color="black", lw=0.8, label="Pareto front")
    ax.set_xlabel(f"robust accuracy, {axis_name(panel['robust_attack'])} (%)")
    ax.set_ylabel("clean accuracy (%)")
    ax.grid(alpha=0.3)


def write_frontier(paths: list[Path], out: Path, pairs: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write ``frontier.{json,md,png}`` into ``out`` and return the document."""
    doc = build_frontier(paths, pairs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontier.json").write_text(json.dumps(doc, indent=2))
    (out / "frontier.md").write_text(markdown(doc))
    plot(doc, out / "frontier.png")
    return doc
