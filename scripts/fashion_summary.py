"""The summary of ``fashion_experiment.py``: ``experiments/DHAT/summary.{md,json}``.

Per seed, every paired difference the reports allow (merged vs each head, merged and main vs the baseline;
Newcombe's interval, McNemar's p); across seeds, each difference's mean with its Student-t interval
(``training.robustness.seeds``). One comparison is the **primary endpoint**, named before the results
(``--primary``, default merged - main under PGD-20 for the CPU experiment, the GPU one uses AutoAttack); its
verdict is the across-seed interval's. Every other row is secondary: within a run its p is Holm-adjusted over
that run's secondary rows and its verdict uses the adjusted p.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from dhat_serve.contract import MAIN, MERGED, MODES, SECOND
from training.robustness.compare import compare
from training.robustness.seeds import t_interval
from training.robustness.settings import EvaluationError
from training.robustness.stats import adjust_secondaries

log = logging.getLogger(__name__)
ATTACKS = (
    ("clean", "pgd20"),
    ("pgd20", "pgd20"),
    ("autoattack", "autoattack"),
    ("autoattack", "strong"),
    ("worst-case", "strong"),
)
"""(attack, the report it is read from): clean and PGD-20 from the PGD-20 report, AutoAttack from its own or from the
strong suite's report, and the strong suite's per-image worst case (issue 35's primary endpoint)."""


def load(root: Path, name: str | None, kind: str) -> dict[str, Any] | None:
    """``reports/NAME/KIND/report.json``, else its committed copy ``experiments/*/NAME-KIND-report.json`` (a run
    evaluated in an earlier session, whose checkpoints are not kept)."""
    if not name:
        return None
    path = root / "reports" / name / kind / "report.json"
    if not path.is_file():
        path = next(iter(sorted((root / "experiments").glob(f"*/{name}-{kind}-report.json"))), path)
    return json.loads(path.read_text()) if path.is_file() else None


def versions(root: Path, names: list[tuple[str, str | None, int | None]]) -> dict[str, dict[str, str]]:
    """Each run's artifact version per report kind. A seed's rows pair modes within one report, but a run retrained
    after one report (a retrain need not reproduce the weights bit for bit) makes its rows another training run's: the
    summary says which, so the fix (``--only eval`` on the new artifact) is not missed."""
    out = {}
    for d, b, _ in names:
        for name in filter(None, (d, b)):
            reports = {kind: load(root, name, kind) for kind in dict.fromkeys(kind for _, kind in ATTACKS)}
            out[name] = {k: r.get("artifact", {}).get("version", "?") for k, r in reports.items() if r}
    return out


def pairs(dhat: str, baseline: str | None) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """The comparisons of the experiment, as ((run, mode), (run, mode)) with run "dhat" or "baseline"."""
    out = [(("dhat", MERGED), ("dhat", MAIN)), (("dhat", MERGED), ("dhat", SECOND))]
    return out + ([(("dhat", MERGED), ("baseline", MAIN)), (("dhat", MAIN), ("baseline", MAIN))] if baseline else [])


def label(a: tuple[str, str], b: tuple[str, str]) -> str:
    return f"{a[1]} - {b[1]}" if a[0] == b[0] else f"{a[0]}:{a[1]} - {b[0]}:{b[1]}"


def seed_rows(root: Path, dhat: str, baseline: str | None, primary: str) -> list[dict[str, Any]]:
    """One seed's paired differences (``compare``), the primary marked and the rest Holm-adjusted."""
    runs = {"dhat": dhat, "baseline": baseline}
    rows = []
    for a, b in pairs(dhat, baseline):
        for attack, kind in ATTACKS:
            ra, rb = load(root, runs[a[0]], kind), load(root, runs[b[0]], kind)
            if any(r and attack not in r["correct"].get(a[1] if r is ra else b[1], {}) for r in (ra, rb)):
                continue  # the report of this kind did not run that attack
            if ra and rb and a[1] in ra["results"] and b[1] in rb["results"]:
                try:
                    rows.append({"comparison": label(a, b), "attack": attack, **compare(ra, a[1], rb, b[1], attack)})
                except EvaluationError as exc:  # not the same images (another --n): no paired row, say why
                    log.warning("%s vs %s, %s: %s", dhat, runs[b[0]], attack, exc)
    chosen = next((r for r in rows if f"{r['comparison'].replace(' ', '')}@{r['attack']}" == primary), None)
    adjust_secondaries(rows, chosen)
    return rows


def across(per_seed: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each (comparison, attack) present in two or more seeds: the seeds, their differences and the t-interval (a
    row that only some seeds have, e.g. the strong suite's, says which)."""
    keys = list(dict.fromkeys((r["comparison"], r["attack"]) for rows in per_seed.values() for r in rows))
    out: list[dict[str, Any]] = []
    for comparison, attack in keys:
        found = {
            seed: r
            for seed, rows in per_seed.items()
            for r in rows
            if (r["comparison"], r["attack"]) == (comparison, attack)
        }
        if len(found) >= 2:
            role = next(iter(found.values())).get("role")
            out.append(
                {
                    "comparison": comparison,
                    "attack": attack,
                    "role": role,
                    "seeds": list(found),
                    "per_seed": [r["difference"] for r in found.values()],
                    **t_interval([r["difference"] for r in found.values()]),
                }
            )
    primary = next((r for r in out if r["role"] == "primary"), None)
    adjust_secondaries(out, primary, p_key="t_p", estimate="mean")  # secondaries' verdicts on Holm-adjusted t-tests
    return out


def pts(v: float) -> str:
    return f"{100 * v:+.2f}"


def markdown(
    dhat: str,
    per_seed: dict[str, list[dict[str, Any]]],
    seeds: list[dict[str, Any]],
    primary: str,
    walls: dict[str, Any],
) -> list[str]:
    md = [
        f"# {dhat}: paired differences per training run and across runs",
        "",
        f"Primary endpoint (named before the results): **{primary}**, its verdict from the across-seed interval. "
        "Differences in points; within a run Newcombe's hybrid score 95 % interval and McNemar's exact p (Holm-"
        "adjusted for secondary rows); across runs the mean and its Student-t 95 % interval over the seeds.",
        "",
    ]
    if seeds and len(per_seed) > 1:
        md += [
            "| comparison | attack | role | seeds | per seed | mean [95 % t-interval] | t-test p | Holm p | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        md += [
            f"| {r['comparison']} | {r['attack']} | {r['role']} | {','.join(r.get('seeds', []))} | "
            f"{', '.join(pts(v) for v in r['per_seed'])} | "
            f"{pts(r['mean'])} [{pts(r['ci95'][0])}, {pts(r['ci95'][1])}] | {r['t_p']:.3g} | "
            f"{r['holm_p']:.3g} | {r['verdict']} |"
            for r in seeds
        ]
        md.append("")
        md += [
            f"Power of {r['comparison']} under {r['attack']} over seeds {','.join(r.get('seeds', []))}: "
            f"{r['power_at_mean']:.2f} if the true difference were the observed mean ({pts(r['mean'])} points, "
            f"between-seed SD {100 * r['sd']:.2f}); {r['seeds_for_80pct_power'] or 'more than 100'} seeds for 80 %."
            for r in seeds
            if r.get("power_at_mean") is not None
            and r["attack"] in ("pgd20", "worst-case")
            and r["comparison"] == "merged - main"
        ] + [""]
    for seed, rows in per_seed.items():
        md += [
            f"Seed {seed}:",
            "",
            "| comparison | attack | n | difference [95 % CI] | McNemar p | Holm p | role | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        md += [
            f"| {r['comparison']} | {r['attack']} | {r['n']} | {pts(r['difference'])} [{pts(r['ci95'][0])}, "
            f"{pts(r['ci95'][1])}] | {r['mcnemar_p']:.3g} | {r['holm_p']:.3g} | {r['role']} | {r['verdict']} |"
            for r in rows
        ]
        md.append("")
    return md + [f"Training wall time: {json.dumps(walls)}", ""]


def summary(
    root: Path, dhat: str, names: list[tuple[str, str | None, int | None]], primary: str = "merged-main@worst-case"
) -> None:
    """``experiments/DHAT/summary.md`` and ``.json`` from the reports under ``root/reports``."""
    per_seed = {str(seed if seed is not None else "recipe"): seed_rows(root, d, b, primary) for d, b, seed in names}
    per_seed = {s: rows for s, rows in per_seed.items() if rows}
    seeds = across(per_seed)
    out = root / "experiments" / dhat
    kept = (
        json.loads((out / "summary.json").read_text()).get("train_wall", {}) if (out / "summary.json").is_file() else {}
    )
    walls = {
        n: json.loads(p.read_text()) if (p := root / "runs" / n / "train_wall.json").is_file() else kept[n]
        for d, b, _ in names
        for n in filter(None, (d, b))
        if (root / "runs" / n / "train_wall.json").is_file() or n in kept
    }  # a run trained in an earlier session keeps the wall time its summary recorded
    built = versions(root, names)
    mixed = {name: kinds for name, kinds in built.items() if len(set(kinds.values())) > 1}
    for name, kinds in mixed.items():
        log.warning("%s: its reports are of different artifacts %s; re-evaluate the current one", name, kinds)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(dhat, per_seed, seeds, primary, walls)
    if mixed:
        md += [f"Reports of different training runs under one name (re-run `--only eval`): {json.dumps(mixed)}", ""]
    (out / "summary.md").write_text("\n".join(md))
    (out / "summary.json").write_text(
        json.dumps(
            {
                "primary_endpoint": primary,
                "per_seed": per_seed,
                "across_seeds": seeds,
                "train_wall": walls,
                "artifact_versions": built,
                "modes": list(MODES),
            },
            indent=2,
        )
    )
    print("\n".join(md))
