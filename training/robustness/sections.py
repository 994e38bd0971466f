"""The parts of ``report.md`` that judge the dual head as a system: adaptive attacks, the head-agreement monitor
against each attacker, and shifted traffic. Each takes ``report.json``'s dict and returns markdown lines."""

from __future__ import annotations

from typing import Any


def pct(value: float, ci: list[float] | None = None) -> str:
    """``84.07% [79.3, 87.9]``: an accuracy with its 95 % interval, in percent."""
    return f"{100 * value:.2f}%" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def accuracy_table(report: dict[str, Any]) -> list[str]:
    """The graph's accuracy per mode (rows) and attack (columns), each with its 95 % Wilson interval, and the per-image
    worst case over all of them (transfer included) in the last column where the report has one."""
    attacks = report["attacks"]
    worst = report.get("worst_case") or {}
    head = attacks + (["**worst case**"] if worst else [])
    lines = ["| mode | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for mode, row in report["results"].items():
        cells = [pct(row["attacks"][a]["graph"], row["attacks"][a].get("graph_ci95")) for a in attacks]
        if worst:
            cells.append(f"**{pct(worst[mode]['graph'], worst[mode]['graph_ci95'])}**")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    if worst:
        over = next(iter(worst.values()))["over"]
        lines += [
            "",
            f"Worst case: per image, right under every one of {', '.join(over)} (an image counts only if "
            "the mode is right on it under all of them).",
        ]
    return lines


def convergence_section(report: dict[str, Any]) -> list[str]:
    """The strongest attack's accuracy along its step and restart ladders: it should stop falling."""
    table = report.get("convergence") or {}
    if not table:
        return []
    lines = [
        "",
        "Convergence of the margin attack (APGD on the logit margin, best iterate; accuracy should stop falling "
        "at the last rung of each ladder, else a warning below):",
        "",
        "| mode | ladder | rungs |",
        "|---|---|---|",
    ]
    for mode, ladders in table.items():
        for ladder, rungs in ladders.items():
            lines.append(
                f"| {mode} | {ladder} | " + " → ".join(f"{r['attack']} {pct(r['graph'])}" for r in rungs) + " |"
            )
    return lines


def sanity_section(report: dict[str, Any]) -> list[str]:
    """The large-eps row: an attack that cannot reach 0 % where any image is reachable is failing."""
    rows = report.get("sanity") or {}
    if not rows:
        return []
    first = next(iter(rows.values()))
    return [
        "",
        f"Sanity (gradient-masking check): {first['attack']} at eps = {first['eps']:g}, where every image is "
        "reachable, must leave 0 %: "
        + ", ".join(f"{m} {pct(r['graph'], r['ci95'])}" for m, r in rows.items())
        + f" (n = {first['n']}).",
    ]


def comparison_section(report: dict[str, Any]) -> list[str]:
    """Merged vs each head, paired: role (primary or secondary), interval, raw and Holm-adjusted p, verdict."""
    rows = [(a, k, c) for a, by in report.get("comparisons", {}).items() for k, c in by.items()]
    if not rows:
        return []
    primary = report.get("primary_endpoint")
    lines = [
        "",
        "Merged vs each head on the same images (Newcombe's hybrid score 95 % interval for paired proportions, "
        "McNemar's exact p). "
        + (
            f"Primary endpoint, fixed before the results: {primary}; every other comparison "
            if primary
            else "No primary endpoint in this report: every comparison "
        )
        + "(the adaptive ones below included) is secondary, its verdict on the Holm-adjusted p.",
        "",
        "| attack | comparison | role | difference | 95 % interval | McNemar p | Holm p | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for attack, name, c in rows:
        verdict = {"higher": "merged higher", "lower": "merged lower"}.get(c["verdict"], c["verdict"])
        holm = f"{c['holm_p']:.3g}" if c.get("role") == "secondary" else "-"
        lines.append(
            f"| {attack} | {name} | {c.get('role', '-')} | {100 * c['difference']:+.2f} pts | "
            f"[{100 * c['ci95'][0]:+.2f}, {100 * c['ci95'][1]:+.2f}] | {c['mcnemar_p']:.3g} | {holm} | {verdict} |"
        )
    return lines


def adaptive_section(report: dict[str, Any]) -> list[str]:
    """Each mode under the attacks on the whole system beside the attack on that mode alone (paired)."""
    table = report.get("adaptive") or {}
    if not table:
        return []
    lines = [
        "",
        "Adaptive attacks (crafted once on the three outputs together, scored on each mode) beside the attack "
        "on the mode alone, on the same images (Newcombe's paired interval, McNemar's exact p, Holm-adjusted p: "
        "secondary comparisons):",
        "",
        "| attack | mode | accuracy | mode-only attack | its accuracy | difference | 95 % interval | McNemar p | "
        "Holm p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_mode in table.items():
        for mode, c in by_mode.items():
            own = report["results"][mode]["attacks"]
            lines.append(
                f"| {name} | {mode} | {pct(own[name]['graph'], own[name]['graph_ci95'])} | {c['against']} | "
                f"{pct(own[c['against']]['graph'], own[c['against']]['graph_ci95'])} | "
                f"{100 * c['difference']:+.2f} pts | [{100 * c['ci95'][0]:+.2f}, {100 * c['ci95'][1]:+.2f}] | "
                f"{c['mcnemar_p']:.3g} | {c['holm_p']:.3g} |"
            )
    return lines


def disagreement_section(report: dict[str, Any]) -> list[str]:
    """The monitor (``heads_agree``) per attacker: false alarms, what the counter shows, detection, evasion."""
    table = report.get("head_disagreement")
    if not table or not table.get("attacks"):
        return []
    clean = table["clean"]
    silent = table.get("clean_evasion", {}).get("heads_agree")
    lines = [
        "",
        f"Head disagreement (main != second in one merged.onnx run, what `mode=all` reports as heads_agree = "
        f"false): {pct(clean['rate'], clean['ci95'])} of clean images (the false-alarm rate)"
        + (
            f"; merged is wrong with the heads agreeing on {pct(silent['rate'], silent['ci95'])} of clean images"
            if silent
            else ""
        )
        + ". Detection is measured against each attacker in turn: `agree` knows the "
        "monitor and aims to pass it, the others do not.",
        "",
        "| attack | crafted against | disagreement on adversarial inputs | on successful ones (detection rate) | "
        "fooled | merged wrong, heads agree (evasion) | merged wrong, all three agree |",
        "|---|---|---|---|---|---|---|",
    ]
    for attack, by_mode in table["attacks"].items():
        for mode, r in by_mode.items():
            ev = r.get("evasion")
            evasion = (
                (
                    f"{pct(ev['heads_agree']['rate'], ev['heads_agree']['ci95'])} | "
                    f"{pct(ev['all_agree']['rate'], ev['all_agree']['ci95'])}"
                )
                if ev
                else "- | -"
            )
            det = r["detection"]
            detection = pct(det["rate"], det["ci95"]) if det else "- (none fooled)"
            lines.append(
                f"| {attack} | {mode} | {pct(r['adversarial']['rate'], r['adversarial']['ci95'])} | "
                f"{detection} | {r['fooled']} | {evasion} |"
            )
    return lines


def shift_section(report: dict[str, Any]) -> list[str]:
    """Accuracy per mode and head disagreement on corrupted test images, beside the clean ones."""
    rows = report.get("shifted_traffic") or []
    if not rows:
        return []
    modes = list(rows[0]["accuracy"])
    dual = "disagreement" in rows[0]
    lines = [
        "",
        "Shifted traffic (common corruptions of the test images, torchvision transforms, seeded; level = "
        "noise sigma, blur sigma or contrast factor):",
        "",
        "| corruption | severity | level | "
        + " | ".join(f"{m} accuracy" for m in modes)
        + (" | head disagreement |" if dual else " |"),
        "|---|---|---|" + "---|" * (len(modes) + dual),
    ]
    for r in rows:
        cells = [pct(r["accuracy"][m]["graph"], r["accuracy"][m]["ci95"]) for m in modes]
        if dual:
            cells.append(pct(r["disagreement"]["rate"], r["disagreement"]["ci95"]))
        level = "-" if r["level"] is None else f"{r['level']:g}"
        lines.append(f"| {r['corruption']} | {r['severity'] or '-'} | {level} | " + " | ".join(cells) + " |")
    return lines


def timing_section(report: dict[str, Any]) -> list[str]:
    """Wall seconds each attack took to craft, per mode (a system attack is crafted once, for every mode)."""
    table = report.get("craft_seconds") or {}
    attacks = [a for a in report["attacks"] if a != "clean"]
    if not table or not attacks:
        return []
    lines = [
        "",
        f"Crafting wall time in seconds on {report.get('device', 'cpu')} (phase 1, summed over chunks; a system "
        "attack is crafted once on the three outputs and listed under each mode; 0: cached before timing existed):",
        "",
        "| mode | " + " | ".join(attacks) + " |",
        "|---|" + "---|" * len(attacks),
    ]
    for mode, row in table.items():
        lines.append(f"| {mode} | " + " | ".join(f"{row.get(a, 0):.1f}" for a in attacks) + " |")
    return lines


def cost_section(report: dict[str, Any]) -> list[str]:
    """What each mode costs to serve (``report['cost']``, from ``training.robustness.cost``); what ``dhat frontier``
    sets beside the accuracies."""
    cost = report.get("cost")
    if not cost:
        return []
    lines = [
        "",
        f"Serving cost per graph (ONNX Runtime {cost['provider']}, {cost['machine']}; median latency; all "
        f"graphs of the artifact: {cost['artifact_bytes']:,} bytes):",
        "",
        "| mode | parameters | ONNX bytes | batch 1 (ms) | batch 32 (ms per image) |",
        "|---|---|---|---|---|",
    ]
    for mode, row in cost["modes"].items():
        lat = row["latency"]
        lines.append(
            f"| {mode} | {row['parameters']:,} | {row['onnx_bytes']:,} | {lat['1']['request_ms']:.3f} | "
            f"{lat['32']['per_image_ms']:.3f} |"
        )
    return lines
