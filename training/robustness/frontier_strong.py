"""The strong suite where it has run, before every training run of a panel has it: how far each point falls below
PGD-20.

The frontier's robust axis stays PGD-20 until every training run of a panel has a strong-suite report
(``training.robustness.frontier.robust_attack``): a worst case for some points and PGD-20 for others would set
unlike numbers side by side. Meanwhile a reader of a PGD-20 verdict still asks whether PGD-20 flatters some points
more than others. A design whose worst case falls 4 points below its PGD-20 while the alternatives' falls 1 would
see a 2-point dominance margin widen; the other way round, narrow. So, per model:mode with a strong report: PGD-20
and the worst case on the same images of the same report, and their difference (the drop), per training run (the
report of the most images of each artifact) and on average. Models with no strong report are named, so nobody
reads the table as complete.
"""

from __future__ import annotations

from typing import Any

from dhat_serve.contract import MODES
from training.robustness.frontier import FALLBACK, Run, chosen
from training.robustness.settings import WORST_CASE


def strong_so_far(group: list[Run], attack: str) -> dict[str, Any] | None:
    """``{"rows": [per model:mode], "missing": [models]}`` for one panel whose axis is PGD-20 and of which some
    model has a strong report; None otherwise (the axis is already the worst case, or no strong report exists).

    A row: ``label``, ``model``, ``mode``, ``runs`` (reports with the suite), ``n`` (their image counts),
    ``pgd20`` and ``worst_case`` (means over those runs, fractions), ``drop_points`` (mean of PGD-20 minus worst
    case, in points) and ``drop_points_runs`` (each run's)."""
    if attack != FALLBACK:
        return None
    measured = chosen(group, WORST_CASE)
    if not measured:
        return None
    rows = []
    for model, versions in sorted(measured.items()):
        runs = sorted(versions.values(), key=lambda r: str(r.path))
        for mode in MODES:
            if (row := mode_row(model, mode, runs)) is not None:
                rows.append(row)
    missing = sorted({r.model for r in group} - set(measured))
    return {"rows": rows, "missing": missing}


def mode_row(model: str, mode: str, runs: list[Run]) -> dict[str, Any] | None:
    """One model:mode over the runs whose report has both PGD-20 and the worst case for it; None if none has."""
    pairs = [
        (pgd[0], worst[0], r.n)
        for r in runs
        if (pgd := r.accuracy(mode, FALLBACK)) is not None and (worst := r.accuracy(mode, WORST_CASE)) is not None
    ]
    if not pairs:
        return None
    drops = [100 * (p - w) for p, w, _ in pairs]
    return {
        "label": f"{model}:{mode}",
        "model": model,
        "mode": mode,
        "runs": len(pairs),
        "n": [n for _, _, n in pairs],
        "pgd20": sum(p for p, _, _ in pairs) / len(pairs),
        "worst_case": sum(w for _, w, _ in pairs) / len(pairs),
        "drop_points": sum(drops) / len(drops),
        "drop_points_runs": drops,
    }


def strong_lines(panel: dict[str, Any]) -> list[str]:
    """``frontier.md``'s table of the strong suite so far under one panel (nothing when the panel has none)."""
    so_far = panel.get("strong_so_far")
    if not so_far:
        return []
    lines = [
        "### The strong suite so far",
        "",
        "The robust axis above stays PGD-20 until every training run has a strong-suite report. Where one has run: "
        "PGD-20 and the suite's per-image worst case on the same images (means over the runs with the suite), and how "
        "far the worst case falls below PGD-20 (points; each run's in brackets).",
        "",
        "| point | runs with the suite | n | PGD-20 % | worst case % | drop (points) |",
        "|---|---|---|---|---|---|",
    ]
    for r in so_far["rows"]:
        each = ", ".join(f"{d:.2f}" for d in r["drop_points_runs"])
        lines.append(
            f"| {r['label']} | {r['runs']} | {'/'.join(map(str, r['n']))} | {100 * r['pgd20']:.2f} | "
            f"{100 * r['worst_case']:.2f} | {r['drop_points']:.2f} [{each}] |"
        )
    if so_far["missing"]:
        lines += ["", f"No strong-suite report yet: {', '.join(so_far['missing'])}."]
    return lines + [""]


def strong_sentence(panel: dict[str, Any]) -> str | None:
    """The verdict's line on the strong suite so far: how far the worst case falls below PGD-20 for the designs'
    modes and for the single models (a mode at 0 % under PGD-20 has nothing to lose, and would pull a mean down),
    and for each design mode dominated under PGD-20 by a single model with the suite, whether that model stays
    ahead on the robust axis once each side's drop is taken off (an estimate from means over other runs and images,
    not a test: the verdict proper waits for the suite on every run)."""
    so_far = panel.get("strong_so_far")
    if not so_far or not so_far["rows"]:
        return None
    drop = {r["label"]: r["drop_points"] for r in so_far["rows"]}
    designs = {d["model"] for d in panel["verdict"]["designs"]}
    groups = [
        (name, [r["drop_points"] for r in so_far["rows"] if (r["model"] in designs) == is_design and r["pgd20"] > 0])
        for name, is_design in (("the designs' modes", True), ("the single models", False))
    ]
    spans = " and ".join(f"{lo_hi(values)} for {name}" for name, values in groups if values)
    margins = [
        b["robust_points"] + drop[m["label"]] - drop[b["by"]]
        for d in panel["verdict"]["designs"]
        for m in d["modes"]
        if m["label"] in drop
        for b in m["beaten_by"]
        if b["by"] in drop
    ]
    images = " or ".join(f"{n:,}" for n in sorted({n for r in so_far["rows"] for n in r["n"]}))
    aside = (
        " (modes at 0 % under PGD-20, which cannot fall, aside)" if any(r["pgd20"] <= 0 for r in so_far["rows"]) else ""
    )
    none_yet = f"; none yet for {', '.join(so_far['missing'])}" if so_far["missing"] else ""
    text = (
        f"**The strong suite so far** ({training_runs(so_far['rows'])} of {training_runs(panel['points'])} training "
        f"runs, on the first {images} test images{none_yet}): its per-image worst case falls below PGD-20 on the same "
        f"images by {spans}{aside}."
    )
    if margins:
        text += (
            f" Of the {len(margins)} dominations under PGD-20 where both sides have it, {sum(x > 0 for x in margins)} "
            "keep the single model ahead on the robust axis once each side's mean drop is taken off its margin (an "
            "estimate from other runs and images, not a test)."
        )
    return text


def training_runs(rows: list[dict[str, Any]]) -> int:
    """Training runs behind rows or points (a model's modes share its runs: its largest count, once per model)."""
    most: dict[str, int] = {}
    for r in rows:
        most[r["model"]] = max(most.get(r["model"], 0), r["runs"])
    return sum(most.values())


def lo_hi(values: list[float]) -> str:
    """``2.90-5.50 points (mean 3.85)``, or one value's points."""
    if len(values) == 1:
        return f"{values[0]:.2f} points"
    return f"{min(values):.2f}-{max(values):.2f} points (mean {sum(values) / len(values):.2f})"
