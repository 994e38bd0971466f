"""How many epochs a single-head baseline needs to spend what a DH-AT run spent: its three stages, merger included.

    python scripts/equal_compute.py runs/fashion-mnist-cpu   # -> experiments/fashion-mnist-cpu/equal-compute.json

The cost of an epoch of stage s is the *fastest* epoch of that stage in the run's ``metrics.jsonl`` (seconds on
this machine: the slower ones shared the cores with other work, the fastest is the closest to the epoch's own
cost). The baseline trains the same network as stage 1 with the same attack and batch, so one of its epochs
costs what a stage-1 epoch costs; its epochs are the DH-AT run's total cost over that: round(sum over stages of
epochs_s * cost_s / cost_1). The baseline recipe says which run and which numbers it came from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def equal_compute(run: Path) -> dict:
    """Per stage: epochs trained and the fastest epoch's seconds; the total, and the baseline epochs that match it."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    stages = {}
    for stage in sorted({r["stage"] for r in rows}):
        secs = [r["seconds"] for r in rows if r["stage"] == stage]
        stages[str(stage)] = {"epochs": len(secs), "fastest_epoch_s": min(secs), "cost_s": len(secs) * min(secs)}
    total = sum(s["cost_s"] for s in stages.values())
    per_epoch = stages["1"]["fastest_epoch_s"]
    return {
        "run": str(run),
        "stages": stages,
        "total_s": round(total, 1),
        "baseline_epoch_s": per_epoch,
        "baseline_epochs": round(total / per_epoch),
        "rule": "round(sum_s epochs_s * fastest_epoch_s / fastest stage-1 epoch), seconds on this CPU",
    }


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/fashion-mnist-cpu")
    result = equal_compute(run)
    out = Path(__file__).resolve().parents[1] / "experiments" / run.name / "equal-compute.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
