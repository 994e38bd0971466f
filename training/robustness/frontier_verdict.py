"""The verdict a user reads off the frontier: for each dual-head design, where each of its modes sits against the models
they would deploy instead, and what its switch buys against the pair of separate models.

Why apart from the front: the front of all points mixes designs with one another, but a user deciding whether to
deploy a design at all compares it with the alternatives only: single-head models (one mode each; a model whose
reports have one mode), alone or served side by side as a pair (``--pair``). A design's mode is *dominated* when an
alternative's point is at least as accurate and as robust and better on one axis; *beyond noise* on an axis where the
95 % interval of the difference lies above zero (``axes_beyond_noise``: over training runs where there are several);
*within noise of* an alternative that does not dominate it when neither is ahead of the other beyond noise on either
axis (the data show nothing it offers that the alternative lacks: a claim is made only where they do). Nothing here
judges a design worth deploying on its own; it states the comparisons, and the README quotes them
(``scripts/readme_numbers.py``'s ``verdict`` block).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from training.robustness.frontier import axis_name, dominates, num
from training.robustness.frontier_strong import strong_sentence
from training.robustness.seeds import difference_interval


def panel_verdict(panel: dict[str, Any]) -> dict[str, Any]:
    """``{"alternatives": [labels], "pairs": [deployments], "designs": [per design], "every_design_dominated": bool,
    "every_design_matched": bool}`` for one panel of ``build_frontier`` (its points and deployments already computed).
    A design is dominated when each of its modes is dominated by a single model or scores exactly what one does: it
    offers nothing they lack; matched when each mode is that or within noise of a single model on both axes: it offers
    nothing the data show they lack."""
    points = panel["points"]
    modes_of = Counter(p["model"] for p in points)
    alternatives = [p for p in points if modes_of[p["model"]] == 1]
    designs = []
    for model in sorted(m for m, count in modes_of.items() if count > 1):
        own = [p for p in points if p["model"] == model]
        dep = next(d for d in panel["deployments"] if d["models"] == [model])
        modes = [mode_verdict(p, alternatives) for p in own]
        designs.append(
            {
                "model": model,
                "runs": max(p["runs"] for p in own),
                "bytes": dep["bytes"],
                "switch": dep["switch"],
                "modes": modes,
                "dominated": all(m["beaten_by"] or m["equal_to"] for m in modes),  # nothing a single model lacks
                "matched": all(m["beaten_by"] or m["equal_to"] or m["within_noise_of"] for m in modes),
            }
        )
    return {
        "alternatives": [p["label"] for p in alternatives],
        "pairs": [d for d in panel["deployments"] if len(d["models"]) > 1],
        "designs": designs,
        "every_design_dominated": bool(designs) and bool(alternatives) and all(d["dominated"] for d in designs),
        "every_design_matched": bool(designs) and bool(alternatives) and all(d["matched"] for d in designs),
    }


def mode_verdict(point: dict[str, Any], alternatives: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode against every alternative that dominates it, the clearest and largest margin first."""
    beaten = [
        {
            "by": a["label"],
            "clean_points": 100 * (a["clean"] - point["clean"]),
            "robust_points": 100 * (a["robust"] - point["robust"]),
            "beyond_noise": (axes := axes_beyond_noise(a, point)),
            "clear": bool(axes),
        }
        for a in alternatives
        if dominates(a, point) and not same(a, point)  # the same graphs, another seed set: equal, not better
    ]
    beaten.sort(key=lambda b: (-len(b["beyond_noise"]), -(b["clean_points"] + b["robust_points"]), b["by"]))
    return {
        "label": point["label"],
        "mode": point["mode"],
        "clean": point["clean"],
        "robust": point["robust"],
        "runs": point["runs"],
        "beaten_by": beaten,
        "equal_to": [a["label"] for a in alternatives if same(a, point)],
        "within_noise_of": [
            a["label"]
            for a in alternatives
            if not (same(a, point) or dominates(a, point) or axes_beyond_noise(a, point) or axes_beyond_noise(point, a))
        ],
    }


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """``b`` is one of ``a``'s trained models: each of its ONNX graphs (by SHA-256) is one of ``a``'s runs' graphs
    (a design whose stage 1 is that model, trained with the same seeds: its means differ only by which seeds each
    has run so far), or, where reports carry no hashes, exactly the same clean and robust accuracy."""
    if a.get("graphs") and b.get("graphs"):
        return set(b["graphs"]) <= set(a["graphs"])
    return a["clean"] == b["clean"] and a["robust"] == b["robust"]


def axes_beyond_noise(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The axes (``clean``, ``robust``) on which ``a`` is ahead of ``b`` beyond noise: the 95 % interval of the
    difference lies above zero (``difference_interval``: Welch's t over the training runs, or one run set against
    the other side's spread), or, with one run each, ``a``'s Wilson interval lies wholly above ``b``'s (test-sample
    noise only). A dominance beyond noise on one axis only is a tie on the other: the README must say which, since
    one more seed can flip a margin of a tenth of a point."""
    axes = []
    for axis in ("clean", "robust"):
        diff = difference_interval(a.get(f"{axis}_runs") or [], b.get(f"{axis}_runs") or [])
        if diff is not None:
            ahead = diff["ci95"][0] > 0
        else:
            lo, hi = a.get(f"{axis}_ci95"), b.get(f"{axis}_ci95")
            ahead = bool(lo and hi and lo[0] > hi[1])
        if ahead:
            axes.append(axis)
    return axes


def verdict_lines(doc: dict[str, Any]) -> list[str]:
    """Per panel with a design and an alternative: one bullet per design, then the sentence over all designs."""
    lines: list[str] = []
    for panel in doc["panels"]:
        verdict = panel["verdict"]  # computed once, by build_frontier
        if not verdict["designs"] or not verdict["alternatives"]:
            continue
        pairs = "; ".join(f"{d['name']} ({num(d['bytes'])} bytes)" for d in verdict["pairs"])
        lines += [
            f"Against the models a user would deploy instead on {panel['dataset']} (eps {panel['eps']:g}, robust "
            f"axis: {axis_name(panel['robust_attack'])}): {', '.join(verdict['alternatives'])}"
            + (f", and served side by side {pairs}" if pairs else "")
            + ".",
            "",
        ]
        lines += [design_line(d, verdict["pairs"]) for d in verdict["designs"]]
        lines += ["", closing_sentence(verdict), ""]
        if (strong := strong_sentence(panel)) is not None:
            lines += [strong, ""]
    return lines


def design_line(design: dict[str, Any], pairs: list[dict[str, Any]]) -> str:
    """One design: each mode's place against the alternatives, its switch, and each pair's switch beside it."""
    runs = f"{design['runs']} run{'s' if design['runs'] > 1 else ''}"
    modes = "; ".join(mode_phrase(m) for m in design["modes"])
    text = f"- **{design['model']}** ({runs}; {num(design['bytes'])} bytes in all graphs): {modes}. "
    s = design["switch"]
    if s["from"] == s["to"]:
        text += f"No switch: `{s['from'].split(':')[1]}` is both its most accurate and its most robust mode."
    else:
        text += (
            f"Its switch `{s['from'].split(':')[1]}` → `{s['to'].split(':')[1]}`: {s['clean_points']:+.2f} clean / "
            f"{s['robust_points']:+.2f} robust points, {num(s['latency_b1_ms'], '+.3f')} ms at batch 1"
        )
        text += "".join(
            f"; the pair's ({p['name']}): {p['switch']['clean_points']:+.2f} / {p['switch']['robust_points']:+.2f}"
            for p in pairs
        )
        text += "."
    return text


def mode_phrase(mode: dict[str, Any]) -> str:
    """``main`` 79.12 / 61.41 % dominated by X (+1.90 clean, +2.68 robust points; clean ahead beyond noise,
    robust within it)."""
    head = f"`{mode['mode']}` {100 * mode['clean']:.2f} / {100 * mode['robust']:.2f} %"
    if not mode["beaten_by"]:
        if mode["equal_to"]:
            return f"{head} is {', '.join(mode['equal_to'])} itself (the same graphs or scores): nothing it lacks"
        if mode["within_noise_of"]:
            return (
                f"{head} on the alternatives' front, but within noise of {', '.join(mode['within_noise_of'])} on "
                "both axes: nothing shown that it lacks"
            )
        return f"{head} on the alternatives' front"
    best = mode["beaten_by"][0]
    how = separation(best["beyond_noise"])
    more = len(mode["beaten_by"]) - 1
    also = f", and by {more} more" if more else ""
    return (
        f"{head} dominated by {best['by']} ({best['clean_points']:+.2f} clean, {best['robust_points']:+.2f} robust "
        f"points; {how}){also}"
    )


def separation(axes: list[str]) -> str:
    """How far apart a dominance is: beyond noise on both axes, on one (a tie within noise on the other), or none."""
    if len(axes) == 2:
        return "ahead beyond noise on both axes"
    if axes:
        other = "robust" if axes[0] == "clean" else "clean"
        return f"{axes[0]} ahead beyond noise, {other} within it"
    return "within noise on both axes"


def closing_sentence(verdict: dict[str, Any]) -> str:
    """Whether every mode of every design is dominated by a single model (or scores exactly what one does), or
    which modes are neither: those are what a design offers that no single model does."""
    modes = [m for d in verdict["designs"] for m in d["modes"]]
    equal_only = [f"{m['label']} is {', '.join(m['equal_to'])}" for m in modes if not m["beaten_by"] and m["equal_to"]]
    tied = [
        f"{m['label']} and {', '.join(m['within_noise_of'])}"
        for m in modes
        if not (m["beaten_by"] or m["equal_to"]) and m["within_noise_of"]
    ]
    free = [m["label"] for m in modes if not (m["beaten_by"] or m["equal_to"] or m["within_noise_of"])]
    best = [m["beaten_by"][0] for m in modes if m["beaten_by"]]
    clear, both = sum(b["clear"] for b in best), sum(len(b["beyond_noise"]) == 2 for b in best)
    beaten = (
        f"{len(best)} of {len(modes)} modes dominated, {clear} beyond noise (95 %) on at least one axis, {both} on both"
    )
    ties = f"; a single model itself: {', '.join(equal_only)}" if equal_only else ""
    ties += f"; within noise on both axes: {'; '.join(tied)}" if tied else ""
    if verdict["every_design_dominated"]:
        return (
            f"**Every mode of every design is dominated by a single model or equal to one** ({beaten}{ties}): one "
            "model, or two served side by side, gives every point a design offers, or better."
        )
    if verdict["every_design_matched"]:
        return (
            "**Every mode of every design is dominated by a single model, equal to one, or within noise of one on "
            f"both axes** ({beaten}{ties}): no design offers a point that the data show one model, or two served "
            "side by side, lacks."
        )
    return f"**Not dominated by any single model**: {', '.join(free)} ({beaten}{ties})."
