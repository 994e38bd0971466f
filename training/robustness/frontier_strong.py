"""The strong suite where it has run, before every model of a panel has it: how far each point falls below PGD-20.

The frontier's robust axis stays PGD-20 until every model of a panel has a strong-suite report
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
        "The robust axis above stays PGD-20 until every model has a strong-suite report. Where one has run: PGD-20 "
        "and the suite's per-image worst case on the same images (means over the runs with the suite), and how far "
        "the worst case falls below PGD-20 (points; each run's in brackets).",
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
