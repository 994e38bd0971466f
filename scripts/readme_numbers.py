"""The result tables of README.md and docs/*.md, generated from the committed per-image data, so text and data
cannot drift apart.

A block in README.md or any docs/*.md file

    <!-- numbers: accuracy experiments/digits/digits-adaptive-report.json -->
    ...
    <!-- /numbers -->

holds exactly what ``render("accuracy", path)`` gives: the same tables ``report.md`` has (``training.robustness.
sections``), from a committed ``report.json`` (or, for ``seeds``, a ``summary.json`` of ``fashion_experiment.py``;
for ``frontier`` and ``verdict``, a ``frontier.json`` of ``dhat frontier``, drawn again from the reports it names).
``python scripts/readme_numbers.py`` rewrites every block of every such file from its data (``FILE`` arguments:
only those; ``--check``: rewrite nothing, list the blocks that differ, exit 1 if any); ``tests/test_readme_numbers.py``
fails when a block and its file disagree or the file is not committed.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from training.robustness import sections

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- numbers: (\S+) (\S+) -->\n(.*?)<!-- /numbers -->", re.S)
KINDS = {
    "accuracy": sections.accuracy_table,
    "comparisons": sections.comparison_section,
    "adaptive": sections.adaptive_section,
    "monitor": sections.disagreement_section,
    "shift": sections.shift_section,
    "convergence": sections.convergence_section,
    "sanity": sections.sanity_section,
    "timing": sections.timing_section,
}


def seeds_table(summary: dict) -> list[str]:
    """The across-seed rows of a ``fashion_experiment.py`` summary: per-seed differences, mean, t-interval."""
    lines = [
        "| comparison | attack | role | seeds | per seed (points) | mean [95 % t-interval] | t-test p | Holm p "
        "| verdict | power at the mean | seeds for 80 % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["across_seeds"]:
        ci = r["ci95"]
        interval = f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else "-"
        p, holm_p = (f"{r[k]:.3g}" if r.get(k) is not None else "-" for k in ("t_p", "holm_p"))
        seeds = ",".join(r["seeds"]) if "seeds" in r else "-"
        lines.append(
            f"| {r['comparison']} | {r['attack']} | {r['role']} | {seeds} | "
            f"{', '.join(f'{100 * v:+.2f}' for v in r['per_seed'])} | {100 * r['mean']:+.2f} {interval} | "
            f"{p} | {holm_p if r['role'] == 'secondary' else '-'} | {r['verdict']} | {_power(r)} |"
        )
    return lines


def _power(row: dict) -> str:
    """Power of the across-seed t-test if the true difference were the observed mean, and the seeds for 80 %."""
    power, need = row.get("power_at_mean"), row.get("seeds_for_80pct_power")
    return f"{power:.2f} | {need or '> 100'}" if power is not None else "- | -"


def redrawn(doc: dict) -> dict:
    """A ``dhat frontier`` document drawn again from its own sources (the committed per-image reports), not read."""
    from training.robustness.frontier_report import build_frontier

    return build_frontier([ROOT / s for s in doc["sources"]], tuple(doc["pairs"]))


def frontier_table(doc: dict) -> list[str]:
    """The frontier's points and deployments, from the redrawn document."""
    from training.robustness.frontier_report import panel_lines

    return panel_lines(redrawn(doc))


def frontier_verdict(doc: dict) -> list[str]:
    """The frontier's verdict per design, from the redrawn document."""
    from training.robustness.frontier_verdict import verdict_lines

    return verdict_lines(redrawn(doc))


DOCUMENT_KINDS = {"seeds": seeds_table, "frontier": frontier_table, "verdict": frontier_verdict}


def render(kind: str, path: str) -> str:
    """The markdown of block ``kind`` from the committed JSON file ``path`` (relative to the repository)."""
    doc = json.loads((ROOT / path).read_text())
    lines = (DOCUMENT_KINDS.get(kind) or KINDS[kind])(doc)
    while lines and not lines[0]:
        lines = lines[1:]  # the report's sections start with a blank line
    return "\n".join(lines) + "\n"


def documents() -> list[Path]:
    """Every file whose blocks are checked: README.md and each docs/*.md, in that order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def stale(text: str) -> list[str]:
    """Every block of ``text`` (a README or docs page) whose table is not what its file renders (or whose file is
    missing)."""
    out = []
    for kind, path, body in BLOCK.findall(text):
        if not (ROOT / path).is_file():
            out.append(f"{kind} {path}: no such file (commit the report.json the text quotes)")
        elif body != render(kind, path):
            out.append(f"{kind} {path}: the table differs from the file (run python scripts/readme_numbers.py)")
    return out


def refresh(text: str) -> str:
    """``text`` with every block regenerated from its file."""
    return BLOCK.sub(lambda m: f"<!-- numbers: {m[1]} {m[2]} -->\n{render(m[1], m[2])}<!-- /numbers -->", text)


def main(argv: list[str] | None = None) -> int:
    """Refresh (or with ``--check`` only check) the blocks of the given files, by default README.md and docs/*.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="files, relative to the repository (default: all)")
    parser.add_argument("--check", action="store_true", help="write nothing; list the stale tables, exit 1 if any")
    args = parser.parse_args(argv)
    targets = [ROOT / f for f in args.files] or documents()
    problems = 0
    for target in targets:
        if not args.check:
            target.write_text(refresh(target.read_text()))
        found = stale(target.read_text())
        problems += len(found)
        blocks = len(BLOCK.findall(target.read_text()))
        print("\n".join(f"{target.name}: {p}" for p in found) or f"{target.name}: {blocks} blocks match their data")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
